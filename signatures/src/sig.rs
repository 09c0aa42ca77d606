//! A compiled signature: header filters, per-buffer match lists, flow state operations, and
//! what the prefilter looks for. `compile` turns a raw rule into one, or says why it cannot.

use crate::address::{AddressSet, PortSet, Vars};
use crate::buffer::{legacy_modifier, Buffer, BufferProto, Side};
use crate::classification::Classifications;
use crate::content::{parse_content, Content, FastPattern, Val};
use crate::keywords::base64::Base64Decode;
use crate::keywords::bytes::{ByteExtract, ByteJump, ByteMath, ByteTest, IsDataAt};
use crate::keywords::pcre::Pcre;
use crate::keywords::transform::Transform;
use crate::keywords::KeywordError;
use crate::parse::{unescape, RawRule};
use crate::threshold::{SigThresholds, ThresholdSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Alert,
    Pass,
    Drop,
    Reject,
    RejectSrc,
    RejectDst,
    RejectBoth,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "alert" => Action::Alert,
            "pass" => Action::Pass,
            "drop" => Action::Drop,
            "reject" => Action::Reject,
            "rejectsrc" => Action::RejectSrc,
            "rejectdst" => Action::RejectDst,
            "rejectboth" => Action::RejectBoth,
            _ => return None,
        })
    }

    /// The rule's action as written.
    pub fn keyword(self) -> &'static str {
        match self {
            Action::Alert => "alert",
            Action::Pass => "pass",
            Action::Drop => "drop",
            Action::Reject => "reject",
            Action::RejectSrc => "rejectsrc",
            Action::RejectDst => "rejectdst",
            Action::RejectBoth => "rejectboth",
        }
    }

    /// The EVE `alert.action` value: on a passive sensor nothing is blocked inline.
    pub fn eve_name(self) -> &'static str {
        match self {
            Action::Alert | Action::Pass => "allowed",
            _ => "blocked",
        }
    }
}

/// Transport filter from the rule's protocol field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpProto {
    Any,
    Tcp,
    Udp,
    /// ICMP for IPv4 and ICMPv6, as Suricata's `icmp`.
    Icmp,
    Icmpv4,
    Icmpv6,
    Sctp,
}

impl IpProto {
    pub fn matches(self, proto: u8) -> bool {
        match self {
            IpProto::Any => true,
            IpProto::Tcp => proto == 6,
            IpProto::Udp => proto == 17,
            IpProto::Icmp => proto == 1 || proto == 58,
            IpProto::Icmpv4 => proto == 1,
            IpProto::Icmpv6 => proto == 58,
            IpProto::Sctp => proto == 132,
        }
    }
}

/// `flow:` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowOpts {
    pub established: bool,
    pub not_established: bool,
    pub stateless: bool,
    /// Some(true) = to_server, Some(false) = to_client.
    pub to_server: Option<bool>,
    pub only_stream: bool,
    pub no_stream: bool,
    pub only_frag: bool,
    pub no_frag: bool,
}

/// A numeric comparison as Suricata's uint keywords write it (`5`, `<5`, `>=5`, `!5`, `2<>9`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumCmp {
    Eq(u64),
    Ne(u64),
    Lt(u64),
    Le(u64),
    Gt(u64),
    Ge(u64),
    /// Exclusive range.
    Range(u64, u64),
    NotRange(u64, u64),
}

impl NumCmp {
    pub fn parse(s: &str) -> Result<NumCmp, String> {
        let s = s.trim();
        let num = |t: &str| -> Result<u64, String> {
            let t = t.trim();
            let parsed = if let Some(h) = t.strip_prefix("0x") {
                u64::from_str_radix(h, 16)
            } else {
                t.parse()
            };
            parsed.map_err(|_| format!("expected a number, found {t:?}"))
        };
        for sep in ["<>", "-"] {
            if let Some((a, b)) = s.split_once(sep) {
                if !a.trim().is_empty() {
                    let (neg, a) = match a.trim().strip_prefix('!') {
                        Some(r) => (true, r),
                        None => (false, a),
                    };
                    let (a, b) = (num(a)?, num(b)?);
                    if a >= b {
                        return Err(format!("range {s:?} is empty"));
                    }
                    return Ok(if neg {
                        NumCmp::NotRange(a, b)
                    } else {
                        NumCmp::Range(a, b)
                    });
                }
            }
        }
        Ok(if let Some(r) = s.strip_prefix("<=") {
            NumCmp::Le(num(r)?)
        } else if let Some(r) = s.strip_prefix(">=") {
            NumCmp::Ge(num(r)?)
        } else if let Some(r) = s.strip_prefix('<') {
            NumCmp::Lt(num(r)?)
        } else if let Some(r) = s.strip_prefix('>') {
            NumCmp::Gt(num(r)?)
        } else if let Some(r) = s.strip_prefix("!=") {
            NumCmp::Ne(num(r)?)
        } else if let Some(r) = s.strip_prefix('!') {
            NumCmp::Ne(num(r)?)
        } else if let Some(r) = s.strip_prefix('=') {
            NumCmp::Eq(num(r)?)
        } else {
            NumCmp::Eq(num(s)?)
        })
    }

    pub fn test(self, v: u64) -> bool {
        match self {
            NumCmp::Eq(a) => v == a,
            NumCmp::Ne(a) => v != a,
            NumCmp::Lt(a) => v < a,
            NumCmp::Le(a) => v <= a,
            NumCmp::Gt(a) => v > a,
            NumCmp::Ge(a) => v >= a,
            NumCmp::Range(a, b) => v > a && v < b,
            NumCmp::NotRange(a, b) => !(v > a && v < b),
        }
    }
}

/// One step of a buffer's match list, in rule order.
#[derive(Debug)]
pub enum Match {
    Content(Box<Content>),
    Pcre(Box<Pcre>),
    ByteTest(ByteTest),
    ByteJump(ByteJump),
    ByteExtract(ByteExtract),
    ByteMath(ByteMath),
    IsDataAt(IsDataAt),
    /// `bsize` (and `urilen`): the buffer's length.
    Bsize(NumCmp),
    Base64Decode(Base64Decode),
    /// `base64_data`: the rest of the list inspects the decoded bytes.
    Base64Data,
}

impl Match {
    pub fn is_relative(&self) -> bool {
        match self {
            Match::Content(c) => c.is_relative(),
            Match::Pcre(p) => p.relative,
            Match::ByteTest(b) => b.relative,
            Match::ByteJump(b) => b.relative,
            Match::ByteExtract(b) => b.relative,
            Match::ByteMath(b) => b.relative,
            Match::IsDataAt(b) => b.relative,
            Match::Base64Decode(b) => b.relative,
            Match::Bsize(_) | Match::Base64Data => false,
        }
    }
}

/// The matches on one buffer (after its transforms).
#[derive(Debug)]
pub struct BufferList {
    pub buffer: Buffer,
    pub transforms: Vec<Transform>,
    /// Identity of the transform chain, so equal chains share a prefilter database.
    pub transform_key: String,
    pub matches: Vec<Match>,
    /// The side this list inspects (resolved from the buffer and the rule's direction).
    pub side: Side,
}

/// Packet header conditions.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderMatch {
    Dsize(NumCmp),
    Ttl(NumCmp),
    Tos(NumCmp),
    IpId(NumCmp),
    IpProto(NumCmp),
    IcmpType(NumCmp),
    IcmpCode(NumCmp),
    IcmpId(u16),
    IcmpSeq(u16),
    TcpSeq(u32),
    TcpAck(u32),
    TcpWindow(NumCmp),
    TcpMss(NumCmp),
    /// `flags`: required bits, mode, and bits to ignore.
    TcpFlags {
        bits: u8,
        mode: FlagMode,
        ignore: u8,
    },
    SameIp(bool),
    /// `fragbits`: bits (M=1, D=2, R=4) with a mode.
    FragBits {
        bits: u8,
        mode: FlagMode,
    },
    FragOffset(NumCmp),
    IpOpts(u16),
    /// `decode-event:ipv4.trunc_pkt`: the decoder raised this event on the packet (kept with
    /// its `decoder.` prefix, as the decoder names it).
    DecodeEvent(String),
    /// `vlan.id:ID[,LAYER]`: a VLAN id, at a layer (0 outermost, negative from the innermost)
    /// or at any layer.
    VlanId {
        id: NumCmp,
        layer: Option<i32>,
    },
    /// `vlan.layers`: the number of VLAN tags.
    VlanLayers(NumCmp),
    /// Protocol field `ipv4` / `ipv6`.
    IpVersion(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagMode {
    /// Exactly these (among those not ignored).
    Exact,
    /// `+`: at least these.
    Plus,
    /// `*`: any of these.
    Any,
    /// `!`: not these.
    Not,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowbitOp {
    /// Every named bit set (`isset,a&b`), or any (`isset,a|b`).
    IsSet {
        bits: Vec<u32>,
        all: bool,
    },
    IsNotSet {
        bits: Vec<u32>,
        all: bool,
    },
    Set(Vec<u32>),
    Unset(Vec<u32>),
    Toggle(Vec<u32>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowintOp {
    Set(u32, Val),
    Add(u32, Val),
    Sub(u32, Val),
    Cmp(u32, std::cmp::Ordering, bool, Val),
    IsSet(u32, bool),
}

#[derive(Debug)]
pub struct Signature {
    pub gid: u32,
    pub sid: u32,
    pub rev: u32,
    pub msg: String,
    pub action: Action,
    pub classtype: Option<String>,
    pub category: String,
    pub priority: u8,
    pub metadata: Vec<String>,
    pub ip_proto: IpProto,
    /// The application protocol the rule's protocol field names, if any.
    pub app_proto: Option<String>,
    /// Only inspect single packets (`tcp-pkt`, `flow:no_stream`).
    pub packet_only: bool,
    /// Only inspect the reassembled stream (`tcp-stream`, `flow:only_stream`).
    pub stream_only: bool,
    pub src: AddressSet,
    pub src_ports: PortSet,
    pub dst: AddressSet,
    pub dst_ports: PortSet,
    pub bidirectional: bool,
    /// `=>`: a transaction rule whose buffers hold on their own sides of one transaction.
    pub transactional: bool,
    pub flow: FlowOpts,
    pub header: Vec<HeaderMatch>,
    pub lists: Vec<BufferList>,
    pub flowbit_checks: Vec<FlowbitOp>,
    pub flowbit_actions: Vec<FlowbitOp>,
    pub flowint_checks: Vec<FlowintOp>,
    pub flowint_actions: Vec<FlowintOp>,
    /// `tls.version`: the TLS version the inspected side's hello gave.
    pub tls_version: Option<TlsVersionMatch>,
    /// `app-layer-event`: events the parser or protocol detection must have raised.
    pub app_events: Vec<AppEventMatch>,
    pub noalert: bool,
    /// The rule's `threshold`/`detection_filter`, with `threshold.config` applied at load.
    pub thresholds: SigThresholds,
    /// Variable slots `byte_extract`/`byte_math` use.
    pub var_slots: usize,
    /// (list, match) of the content the prefilter looks for.
    pub prefilter: Option<(usize, usize)>,
    /// Set when a buffer's parser is missing: the rule loads but cannot match yet.
    pub waiting_for: Option<String>,
    /// Whole rule text, file and line, for `rules check` and errors.
    pub origin: Origin,
}

#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl Signature {
    /// Whether this rule inspects application-layer transactions (else single packets).
    pub fn is_tx(&self) -> bool {
        self.tx_proto().is_some()
    }

    pub fn tx_proto(&self) -> Option<BufferProto> {
        self.lists
            .iter()
            .find_map(|l| l.buffer.proto())
            .or(self.tls_version.map(|_| BufferProto::Tls))
            .or(self.app_events.iter().find_map(|e| e.proto))
    }

    /// The transaction side the rule inspects: its buffers', else its flow direction's.
    /// `Both` when neither fixes one: each side is then inspected separately.
    pub fn tx_side(&self) -> Side {
        if self.transactional {
            // Inspected (and alerting) as the response completes the transaction.
            return Side::Response;
        }
        match self.lists.first() {
            Some(l) => l.side,
            None if self.flow.to_server == Some(false) => Side::Response,
            None if self.flow.to_server.is_none() && !self.app_events.is_empty() => Side::Both,
            None => Side::Request,
        }
    }

    pub fn prefilter_content(&self) -> Option<(&BufferList, &Content)> {
        let (l, m) = self.prefilter?;
        let list = &self.lists[l];
        match &list.matches[m] {
            Match::Content(c) => Some((list, c)),
            _ => None,
        }
    }
}

/// `app-layer-event`: an event a protocol parser raised in the inspected transaction
/// (`dns.z_flag_set`), or one raised on the packet (`proto` None): protocol detection's
/// (`applayer_*`) and, through `stream-event`, TCP reassembly's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppEventMatch {
    pub proto: Option<BufferProto>,
    /// The event's name as the parser raises it (upper case).
    pub name: &'static str,
}

impl AppEventMatch {
    /// `stream-event`: an event TCP reassembly raised on the packet (a packet event, as
    /// protocol detection's).
    fn parse_stream(value: &str) -> Result<AppEventMatch, SkipReason> {
        let v = value.trim().trim_matches('"').trim();
        let name = v.strip_prefix("stream.").unwrap_or(v);
        match vigil_parsers::stream::EVENTS
            .iter()
            .find(|e| e.strip_prefix("stream.") == Some(name))
        {
            Some(&name) => Ok(AppEventMatch { proto: None, name }),
            None => unsupported(format!(
                "stream-event:{v}: Vigil's TCP reassembly does not raise this event"
            )),
        }
    }

    fn parse(value: &str) -> Result<AppEventMatch, SkipReason> {
        use vigil_parsers::app::{parser_event_named, DETECT_EVENTS};
        let v = value.trim().trim_matches('"').trim();

        if v.starts_with('!') {
            return unsupported(format!("app-layer-event:{v}: a negated event"));
        }
        if v.to_ascii_lowercase().starts_with("applayer_") {
            return match DETECT_EVENTS.iter().find(|n| n.eq_ignore_ascii_case(v)) {
                Some(&name) => Ok(AppEventMatch { proto: None, name }),
                None => unsupported(format!(
                    "app-layer-event:{v}: Vigil's protocol detection does not raise this event"
                )),
            };
        }
        let Some((proto_name, event)) = v.split_once('.') else {
            return invalid(format!(
                "app-layer-event: expected <protocol>.<event>, found {v:?}"
            ));
        };
        let Some(proto) = BufferProto::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(proto_name))
        else {
            return unsupported(format!(
                "app-layer-event:{v}: Vigil has no {proto_name} parser"
            ));
        };
        match parser_event_named(proto.app_proto(), event) {
            Some(name) => Ok(AppEventMatch {
                proto: Some(proto),
                name,
            }),
            None => unsupported(format!(
                "app-layer-event:{v}: Vigil's {proto_name} parser does not raise this event"
            )),
        }
    }
}

/// `tls.version`: `1.0` to `1.3` (TLS 1.3 drafts count as 1.3, as in Suricata), or an exact
/// wire value such as `0x7f1c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsVersionMatch {
    pub version: u16,
    /// Given as a wire value: drafts are not folded into 1.3.
    pub raw: bool,
}

impl TlsVersionMatch {
    fn parse(value: &str) -> Result<TlsVersionMatch, SkipReason> {
        let v = value.trim().trim_matches('"');
        let named = match v {
            "1.0" => Some(0x0301),
            "1.1" => Some(0x0302),
            "1.2" => Some(0x0303),
            "1.3" => Some(0x0304),
            _ => None,
        };
        if let Some(version) = named {
            return Ok(TlsVersionMatch {
                version,
                raw: false,
            });
        }
        match v.strip_prefix("0x").filter(|h| h.len() == 4) {
            Some(hex) => u16::from_str_radix(hex, 16)
                .map(|version| TlsVersionMatch { version, raw: true })
                .map_err(|_| SkipReason::Invalid(format!("tls.version: bad value {v:?}"))),
            None => invalid(format!(
                "tls.version: expected 1.0, 1.1, 1.2, 1.3 or 0xNNNN, got {v:?}"
            )),
        }
    }

    pub fn matches(&self, seen: Option<u16>) -> bool {
        let Some(mut v) = seen else {
            return false;
        };
        if !self.raw && v >> 8 == 0x7f {
            v = 0x0304;
        }
        v == self.version
    }
}

/// Why a rule was not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// A keyword (or a keyword option) Vigil cannot honour.
    Unsupported(String),
    /// The rule is malformed.
    Invalid(String),
}

impl SkipReason {
    pub fn message(&self) -> &str {
        match self {
            SkipReason::Unsupported(m) | SkipReason::Invalid(m) => m,
        }
    }
}

fn invalid<T>(m: impl Into<String>) -> Result<T, SkipReason> {
    Err(SkipReason::Invalid(m.into()))
}

fn unsupported<T>(m: impl Into<String>) -> Result<T, SkipReason> {
    Err(SkipReason::Unsupported(m.into()))
}

impl From<KeywordError> for SkipReason {
    fn from(e: KeywordError) -> Self {
        match e {
            KeywordError::Unsupported { .. } => SkipReason::Unsupported(e.to_string()),
            KeywordError::Invalid { .. } => SkipReason::Invalid(e.to_string()),
        }
    }
}

/// Load-time context shared by all rules: variables and name tables.
pub struct CompileContext<'a> {
    pub vars: &'a Vars,
    pub classifications: &'a Classifications,
    /// Interned flowbit/flowint names.
    pub names: &'a mut std::collections::HashMap<String, u32>,
}

impl CompileContext<'_> {
    fn intern(&mut self, name: &str) -> u32 {
        let n = self.names.len() as u32;
        *self.names.entry(name.to_string()).or_insert(n)
    }
}

/// Application-layer protocol names Suricata accepts in the protocol field.
const APP_PROTOS: &[&str] = &[
    "http",
    "http1",
    "http2",
    "dns",
    "tls",
    "ssh",
    "smtp",
    "ftp",
    "ftp-data",
    "smb",
    "dcerpc",
    "nfs",
    "tftp",
    "ikev2",
    "ike",
    "krb5",
    "dhcp",
    "snmp",
    "sip",
    "rfb",
    "mqtt",
    "pgsql",
    "telnet",
    "rdp",
    "modbus",
    "dnp3",
    "enip",
    "ntp",
    "quic",
    "bittorrent-dht",
    "imap",
    "pop3",
    "ldap",
    "websocket",
    "doh2",
    "mdns",
    "template",
];

struct Builder {
    lists: Vec<BufferList>,
    /// The list a sticky buffer selected; content after it goes there.
    current: Option<usize>,
    /// The last content or pcre, which modifiers apply to.
    last: Option<(usize, usize)>,
    var_names: Vec<String>,
    /// After `base64_data` in a list: contents there inspect decoded bytes.
    in_base64: Vec<bool>,
}

impl Builder {
    fn list_for(&mut self, buffer: Buffer) -> usize {
        // A sticky buffer used twice continues its list, as in Suricata.
        if let Some(i) = self
            .lists
            .iter()
            .position(|l| l.buffer == buffer && l.transforms.is_empty())
        {
            return i;
        }
        self.lists.push(BufferList {
            buffer,
            transforms: Vec::new(),
            transform_key: String::new(),
            matches: Vec::new(),
            side: buffer.side(),
        });
        self.in_base64.push(false);
        self.lists.len() - 1
    }

    fn current_list(&mut self) -> usize {
        match self.current {
            Some(i) => i,
            None => self.list_for(Buffer::Packet),
        }
    }

    fn push(&mut self, list: usize, m: Match) -> usize {
        let l = &mut self.lists[list];
        l.matches.push(m);
        l.matches.len() - 1
    }

    fn last_content(&mut self, kw: &str) -> Result<&mut Content, SkipReason> {
        let Some((l, m)) = self.last else {
            return invalid(format!("{kw} needs a preceding content"));
        };
        match &mut self.lists[l].matches[m] {
            Match::Content(c) => Ok(c),
            _ => invalid(format!("{kw} needs a preceding content")),
        }
    }

    fn var_slot(&self, name: &str) -> Option<u8> {
        self.var_names
            .iter()
            .position(|n| n == name)
            .and_then(|i| u8::try_from(i).ok())
    }

    fn val(&self, kw: &str, s: &str) -> Result<Val, SkipReason> {
        let s = s.trim();
        if let Ok(n) = s.parse::<i64>() {
            return Ok(Val::Const(n));
        }
        match self.var_slot(s) {
            Some(slot) => Ok(Val::Var(slot as usize)),
            None => invalid(format!(
                "{kw}: {s:?} is neither a number nor a byte_extract variable"
            )),
        }
    }
}

/// Compiles one raw rule. An error also names the column of the option (or header field) it
/// arose in, when it arose in one.
pub fn compile_at(
    raw: &RawRule<'_>,
    ctx: &mut CompileContext<'_>,
    origin: Origin,
) -> Result<Signature, (SkipReason, Option<usize>)> {
    let mut column = None;
    compile_inner(raw, ctx, origin, &mut column).map_err(|reason| (reason, column))
}

fn compile_inner(
    raw: &RawRule<'_>,
    ctx: &mut CompileContext<'_>,
    origin: Origin,
    column: &mut Option<usize>,
) -> Result<Signature, SkipReason> {
    *column = Some(raw.header_columns[0]);
    let action = Action::parse(raw.action)
        .ok_or_else(|| SkipReason::Invalid(format!("unknown action {:?}", raw.action)))?;
    *column = Some(raw.header_columns[1]);
    let proto_name = raw.proto.to_ascii_lowercase();
    let mut packet_only = false;
    let mut stream_only = false;
    let mut ip_version = None;
    let (ip_proto, app_proto) = match proto_name.as_str() {
        "ip" | "pkthdr" => (IpProto::Any, None),
        "ipv4" | "ip4" => {
            ip_version = Some(4);
            (IpProto::Any, None)
        }
        "ipv6" | "ip6" => {
            ip_version = Some(6);
            (IpProto::Any, None)
        }
        "tcp" => (IpProto::Tcp, None),
        "tcp-pkt" => {
            packet_only = true;
            (IpProto::Tcp, None)
        }
        "tcp-stream" => {
            stream_only = true;
            (IpProto::Tcp, None)
        }
        "udp" => (IpProto::Udp, None),
        "icmp" => (IpProto::Icmp, None),
        "icmpv4" => (IpProto::Icmpv4, None),
        "icmpv6" => (IpProto::Icmpv6, None),
        "sctp" => (IpProto::Sctp, None),
        p if APP_PROTOS.contains(&p) => {
            let transport = match p {
                "dns" | "mdns" | "doh2" => IpProto::Any,
                "tftp" | "ikev2" | "ike" | "dhcp" | "snmp" | "ntp" | "quic" | "bittorrent-dht" => {
                    IpProto::Udp
                }
                "krb5" | "sip" => IpProto::Any,
                _ => IpProto::Tcp,
            };
            let name = if p == "http1" { "http" } else { p };
            (transport, Some(name.to_string()))
        }
        p => return invalid(format!("unknown protocol {p:?}")),
    };
    let addr = |s: &str, what: &str| {
        ctx.vars
            .address_set(s)
            .map_err(|e| SkipReason::Invalid(format!("{what}: {e}")))
    };
    *column = Some(raw.header_columns[2]);
    let src = addr(raw.src, "source address")?;
    *column = Some(raw.header_columns[4]);
    let dst = addr(raw.dst, "destination address")?;
    let port = |s: &str, what: &str| {
        ctx.vars
            .port_set(s)
            .map_err(|e| SkipReason::Invalid(format!("{what}: {e}")))
    };
    *column = Some(raw.header_columns[3]);
    let src_ports = port(raw.src_ports, "source port")?;
    *column = Some(raw.header_columns[5]);
    let dst_ports = port(raw.dst_ports, "destination port")?;
    *column = None;

    let mut sig = Signature {
        gid: 1,
        sid: 0,
        rev: 0,
        msg: String::new(),
        action,
        classtype: None,
        category: String::new(),
        priority: 3,
        metadata: Vec::new(),
        ip_proto,
        app_proto,
        packet_only,
        stream_only,
        src,
        src_ports,
        dst,
        dst_ports,
        bidirectional: raw.bidirectional,
        transactional: raw.transactional,
        flow: FlowOpts::default(),
        header: Vec::new(),
        lists: Vec::new(),
        flowbit_checks: Vec::new(),
        flowbit_actions: Vec::new(),
        flowint_checks: Vec::new(),
        flowint_actions: Vec::new(),
        noalert: false,
        thresholds: SigThresholds::default(),
        var_slots: 0,
        prefilter: None,
        tls_version: None,
        app_events: Vec::new(),
        waiting_for: None,
        origin,
    };
    let mut b = Builder {
        lists: Vec::new(),
        current: None,
        last: None,
        var_names: Vec::new(),
        in_base64: Vec::new(),
    };
    if let Some(v) = ip_version {
        sig.header.push(HeaderMatch::IpVersion(v));
    }
    let mut has_sid = false;
    let mut explicit_priority = None;

    for opt in &raw.options {
        *column = Some(opt.column);
        let name = opt.name;
        let value = opt.value.unwrap_or("");
        let need_value = || -> Result<&str, SkipReason> {
            match opt.value {
                Some(v) if !v.is_empty() => Ok(v),
                _ => invalid(format!("{name} needs a value")),
            }
        };
        if let Some(buffer) = legacy_modifier(name) {
            // `content:"x"; http_uri;` moves the content (or pcre) to that buffer's list.
            let Some((l, m)) = b.last else {
                return invalid(format!("{name} needs a preceding content"));
            };
            if b.lists[l].buffer != Buffer::Packet {
                return invalid(format!(
                    "{name} after a content already in {}",
                    b.lists[l].buffer.name()
                ));
            }
            let moved = b.lists[l].matches.remove(m);
            let target = b.list_for(buffer);
            let idx = b.push(target, moved);
            b.last = Some((target, idx));
            continue;
        }
        if let Some(buffer) = Buffer::from_keyword(name) {
            // A buffer both sides have may name its side (`file.data: to_client`), as in
            // Suricata's `=>` rules.
            let side = match (opt.value.map(str::trim), buffer.side()) {
                (None, side) => side,
                (Some("to_server"), Side::Both) => Side::Request,
                (Some("to_client"), Side::Both) => Side::Response,
                (Some(_), Side::Both) => {
                    return invalid(format!("{name}: expected to_server or to_client"))
                }
                (Some(_), _) => return invalid(format!("{name} takes no value")),
            };
            let idx = {
                b.lists.push(BufferList {
                    buffer,
                    transforms: Vec::new(),
                    transform_key: String::new(),
                    matches: Vec::new(),
                    side,
                });
                b.in_base64.push(false);
                b.lists.len() - 1
            };
            b.current = Some(idx);
            continue;
        }
        match name {
            "msg" => sig.msg = parse_msg(need_value()?)?,
            "sid" => {
                sig.sid = need_value()?
                    .parse()
                    .map_err(|_| SkipReason::Invalid(format!("sid: invalid number {value:?}")))?;
                has_sid = true;
            }
            "rev" => {
                sig.rev = value
                    .parse()
                    .map_err(|_| SkipReason::Invalid(format!("rev: invalid number {value:?}")))?
            }
            "gid" => {
                sig.gid = value
                    .parse()
                    .map_err(|_| SkipReason::Invalid(format!("gid: invalid number {value:?}")))?
            }
            "classtype" => sig.classtype = Some(need_value()?.to_string()),
            "priority" => {
                explicit_priority = Some(value.parse::<u8>().map_err(|_| {
                    SkipReason::Invalid(format!("priority: invalid number {value:?}"))
                })?)
            }
            "metadata" => sig.metadata.extend(
                value
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
            ),
            // No effect on what matches: `prefilter` only picks the engine's prefilter keyword.
            "reference" | "target" | "rawbytes" | "prefilter" => {}
            "noalert" => sig.noalert = true,
            "tls.version" => sig.tls_version = Some(TlsVersionMatch::parse(need_value()?)?),
            "app-layer-event" => sig.app_events.push(AppEventMatch::parse(need_value()?)?),
            "stream-event" => sig
                .app_events
                .push(AppEventMatch::parse_stream(need_value()?)?),
            // Legacy certificate keywords with a value: the server certificate's field holds
            // the quoted text (case-sensitive, no escapes), or with `!` does not; never
            // matches without a certificate. A list of its own, so later modifiers keep off it.
            "tls.subject" | "tls.issuerdn" | "tls.fingerprint" => {
                let buffer = match name {
                    "tls.subject" => Buffer::TlsCertSubject,
                    "tls.issuerdn" => Buffer::TlsCertIssuer,
                    _ => Buffer::TlsCertFingerprint,
                };
                let (text, negated) = match need_value()?.trim().strip_prefix('!') {
                    Some(rest) => (rest.trim_start(), true),
                    None => (value.trim(), false),
                };
                let text = text
                    .strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        SkipReason::Invalid(format!("{name}: expected a non-empty quoted string"))
                    })?;
                b.lists.push(BufferList {
                    buffer,
                    transforms: Vec::new(),
                    transform_key: String::new(),
                    matches: vec![Match::Content(Box::new(Content::new(
                        text.as_bytes().to_vec(),
                        negated,
                    )))],
                    side: buffer.side(),
                });
                b.in_base64.push(false);
            }
            // `uricontent` (legacy) is `content` with `http_uri`, as Suricata still reads it.
            "content" | "uricontent" => {
                let (pattern, negated) = parse_content(need_value()?)
                    .map_err(|e| SkipReason::Invalid(format!("{name}: {e}")))?;
                let l = if name == "uricontent" {
                    b.list_for(Buffer::HttpUri)
                } else {
                    b.current_list()
                };
                let idx = b.push(l, Match::Content(Box::new(Content::new(pattern, negated))));
                b.last = Some((l, idx));
            }
            "nocase" => b.last_content(name)?.nocase = true,
            "depth" | "offset" | "distance" | "within" => {
                let v = b.val(name, need_value()?)?;
                let c = b.last_content(name)?;
                let slot = match name {
                    "depth" => &mut c.depth,
                    "offset" => &mut c.offset,
                    "distance" => &mut c.distance,
                    _ => &mut c.within,
                };
                if slot.is_some() {
                    return invalid(format!("{name} set twice on one content"));
                }
                *slot = Some(v);
                if (c.depth.is_some() || c.offset.is_some()) && c.is_relative() {
                    return invalid(format!(
                        "{name}: a content cannot mix depth/offset with distance/within"
                    ));
                }
                if name == "within" {
                    if let Val::Const(w) = v {
                        if w < c.pattern.len() as i64 {
                            return invalid("within is shorter than the content");
                        }
                    }
                }
                if name == "depth" {
                    if let Val::Const(d) = v {
                        if d < c.pattern.len() as i64 {
                            return invalid("depth is shorter than the content");
                        }
                    }
                }
            }
            "startswith" => {
                let c = b.last_content(name)?;
                if c.is_relative() || c.offset.is_some() || c.depth.is_some() {
                    return invalid(
                        "startswith cannot be combined with depth/offset/distance/within",
                    );
                }
                c.startswith = true;
                c.offset = Some(Val::Const(0));
                c.depth = Some(Val::Const(c.pattern.len() as i64));
            }
            "endswith" => b.last_content(name)?.endswith = true,
            "fast_pattern" => {
                let fp = match opt.value {
                    None => FastPattern::Chosen,
                    Some("only") => FastPattern::Only,
                    Some(v) => {
                        let (o, l) = v.split_once(',').ok_or_else(|| {
                            SkipReason::Invalid(format!(
                                "fast_pattern: expected 'only' or offset,length, found {v:?}"
                            ))
                        })?;
                        let o: usize = o.trim().parse().map_err(|_| {
                            SkipReason::Invalid(format!("fast_pattern: bad offset {o:?}"))
                        })?;
                        let l: usize = l.trim().parse().map_err(|_| {
                            SkipReason::Invalid(format!("fast_pattern: bad length {l:?}"))
                        })?;
                        FastPattern::Chop(o, l)
                    }
                };
                let c = b.last_content(name)?;
                if c.negated && fp != FastPattern::Chosen {
                    return invalid("fast_pattern:only/chop on a negated content");
                }
                if let FastPattern::Chop(o, l) = fp {
                    if o.saturating_add(l) > c.pattern.len() || l == 0 {
                        return invalid("fast_pattern chop exceeds the content");
                    }
                }
                c.fast_pattern = fp;
            }
            "pcre" => {
                let pcre = Pcre::parse(need_value()?)?;
                let l = match pcre
                    .buffer
                    .and_then(|f| Buffer::from_keyword(f.buffer_name()))
                {
                    Some(buffer) => b.list_for(buffer),
                    None => b.current_list(),
                };
                let idx = b.push(l, Match::Pcre(Box::new(pcre)));
                b.last = Some((l, idx));
            }
            "isdataat" => {
                let m = IsDataAt::parse(need_value()?, &|n: &str| b.var_slot(n))?;
                let l = b.current_list();
                b.push(l, Match::IsDataAt(m));
            }
            "byte_test" => {
                let m = ByteTest::parse(need_value()?, &|n: &str| b.var_slot(n))?;
                let l = b.current_list();
                b.push(l, Match::ByteTest(m));
            }
            "byte_jump" => {
                let m = ByteJump::parse(need_value()?, &|n: &str| b.var_slot(n))?;
                let l = b.current_list();
                b.push(l, Match::ByteJump(m));
            }
            "byte_extract" => {
                let (mut m, var) = ByteExtract::parse(need_value()?)?;
                m.slot = b.var_names.len() as u8;
                b.var_names.push(var);
                let l = b.current_list();
                b.push(l, Match::ByteExtract(m));
            }
            "byte_math" => {
                let (mut m, var) = ByteMath::parse(need_value()?, &|n: &str| b.var_slot(n))?;
                m.slot = b.var_names.len() as u8;
                b.var_names.push(var);
                let l = b.current_list();
                b.push(l, Match::ByteMath(m));
            }
            "base64_decode" => {
                let m = Base64Decode::parse(opt.value)?;
                let l = b.current_list();
                b.push(l, Match::Base64Decode(m));
            }
            "base64_data" => {
                let l = b.current_list();
                if !b.lists[l]
                    .matches
                    .iter()
                    .any(|m| matches!(m, Match::Base64Decode(_)))
                {
                    return invalid("base64_data needs a preceding base64_decode");
                }
                b.push(l, Match::Base64Data);
                b.in_base64[l] = true;
            }
            "bsize" => {
                let Some(l) = b.current else {
                    return invalid("bsize needs a sticky buffer");
                };
                let cmp = NumCmp::parse(need_value()?)
                    .map_err(|e| SkipReason::Invalid(format!("bsize: {e}")))?;
                b.push(l, Match::Bsize(cmp));
            }
            "urilen" => {
                let v = need_value()?;
                let (v, raw_uri) = match v.split_once(',') {
                    Some((n, kind)) => (n, kind.trim() == "raw"),
                    None => (v, false),
                };
                let cmp =
                    NumCmp::parse(v).map_err(|e| SkipReason::Invalid(format!("urilen: {e}")))?;
                let l = b.list_for(if raw_uri {
                    Buffer::HttpUriRaw
                } else {
                    Buffer::HttpUri
                });
                b.push(l, Match::Bsize(cmp));
            }
            "dsize" => sig.header.push(HeaderMatch::Dsize(num(name, value)?)),
            "ttl" => sig.header.push(HeaderMatch::Ttl(num(name, value)?)),
            "tos" => sig.header.push(HeaderMatch::Tos(num(name, value)?)),
            "id" => sig.header.push(HeaderMatch::IpId(num(name, value)?)),
            "ip_proto" => {
                let n = match value.trim() {
                    "tcp" | "TCP" => NumCmp::Eq(6),
                    "udp" | "UDP" => NumCmp::Eq(17),
                    "icmp" | "ICMP" => NumCmp::Eq(1),
                    "gre" | "GRE" => NumCmp::Eq(47),
                    "ipv6-icmp" => NumCmp::Eq(58),
                    _ => num(name, value)?,
                };
                sig.header.push(HeaderMatch::IpProto(n));
            }
            "itype" => sig.header.push(HeaderMatch::IcmpType(num(name, value)?)),
            "icode" => sig.header.push(HeaderMatch::IcmpCode(num(name, value)?)),
            "icmp_id" => sig
                .header
                .push(HeaderMatch::IcmpId(parse_num(name, value)?)),
            "icmp_seq" => sig
                .header
                .push(HeaderMatch::IcmpSeq(parse_num(name, value)?)),
            "seq" => sig
                .header
                .push(HeaderMatch::TcpSeq(parse_num(name, value)?)),
            "ack" => sig
                .header
                .push(HeaderMatch::TcpAck(parse_num(name, value)?)),
            "window" => sig.header.push(HeaderMatch::TcpWindow(num(name, value)?)),
            "tcp.mss" => sig.header.push(HeaderMatch::TcpMss(num(name, value)?)),
            "sameip" => sig.header.push(HeaderMatch::SameIp(true)),
            "flags" | "tcp.flags" => sig.header.push(parse_flags(value)?),
            "fragbits" => sig.header.push(parse_fragbits(value)?),
            "fragoffset" => sig.header.push(HeaderMatch::FragOffset(num(name, value)?)),
            "ipopts" => sig.header.push(parse_ipopts(value)?),
            "vlan.layers" => sig.header.push(HeaderMatch::VlanLayers(num(name, value)?)),
            "vlan.id" => {
                let (id, layer) = match value.split_once(',') {
                    Some((id, layer)) => (id, Some(layer.trim())),
                    None => (value, None),
                };
                let layer = match layer {
                    None | Some("all") | Some("any") => None,
                    Some(l) => Some(l.parse::<i32>().map_err(|_| {
                        SkipReason::Invalid(format!("vlan.id: invalid layer {l:?}"))
                    })?),
                };
                sig.header.push(HeaderMatch::VlanId {
                    id: num(name, id)?,
                    layer,
                });
            }
            "decode-event" => {
                let v = need_value()?.trim();
                if v.is_empty()
                    || !v
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
                {
                    return invalid(format!("decode-event: invalid event name {v:?}"));
                }
                sig.header
                    .push(HeaderMatch::DecodeEvent(format!("decoder.{v}")));
            }
            "flow" => parse_flow(value, &mut sig.flow)?,
            "flowbits" => parse_flowbits(value, ctx, &mut sig)?,
            "flowint" => parse_flowint(value, ctx, &mut sig)?,
            "threshold" | "detection_filter" => {
                if sig.thresholds.threshold.is_some() {
                    return invalid("only one threshold or detection_filter per rule");
                }
                let spec = if name == "threshold" {
                    ThresholdSpec::parse_threshold(value)
                } else {
                    ThresholdSpec::parse_detection_filter(value)
                };
                sig.thresholds.threshold =
                    Some(spec.map_err(|e| SkipReason::Invalid(e.to_string()))?);
            }
            "app-layer-protocol" => {
                let v = value.trim();
                let (neg, p) = match v.strip_prefix('!') {
                    Some(p) => (true, p),
                    None => (false, v),
                };
                if neg || sig.app_proto.is_some() {
                    return unsupported("app-layer-protocol with negation or on an app-layer rule");
                }
                sig.app_proto = Some(p.to_string());
            }
            _ => {
                if let Ok(t) = Transform::parse(name, opt.value) {
                    let Some(l) = b.current else {
                        return invalid(format!("transform {name} needs a sticky buffer"));
                    };
                    if !b.lists[l].matches.is_empty() {
                        return invalid(format!("transform {name} after matches on the buffer"));
                    }
                    let list = &mut b.lists[l];
                    list.transforms.push(t);
                    if !list.transform_key.is_empty() {
                        list.transform_key.push(';');
                    }
                    list.transform_key.push_str(name);
                    if let Some(v) = opt.value {
                        list.transform_key.push(':');
                        list.transform_key.push_str(v);
                    }
                    continue;
                }
                return unsupported(format!("keyword {name}"));
            }
        }
    }
    *column = None;
    if !has_sid {
        return invalid("rule has no sid");
    }
    sig.var_slots = b.var_names.len();
    if let Some(class) = &sig.classtype {
        match ctx.classifications.get(class) {
            Some(c) => {
                sig.category = c.description.clone();
                sig.priority = c.priority;
            }
            None => return invalid(format!("unknown classtype {class:?}")),
        }
    }
    if let Some(p) = explicit_priority {
        sig.priority = p;
    }
    // Empty lists (a sticky buffer with only transforms, or moved-out packet contents) add
    // nothing; a sticky buffer with no match at all is an error in Suricata.
    let mut lists = Vec::with_capacity(b.lists.len());
    for l in b.lists {
        if l.matches.is_empty() {
            if l.buffer == Buffer::Packet {
                continue;
            }
            return invalid(format!(
                "sticky buffer {} has no match after it",
                l.buffer.name()
            ));
        }
        lists.push(l);
    }
    sig.lists = lists;
    sig.stream_only |= sig.flow.only_stream;
    sig.packet_only |= sig.flow.no_stream;
    if sig.stream_only && sig.packet_only {
        return invalid("rule inspects neither packets nor the stream");
    }
    resolve_sides(&mut sig)?;
    check_header_lists(&mut sig)?;
    sig.prefilter = choose_prefilter(&sig);
    Ok(sig)
}

/// `msg` is one double-quoted string; an unescaped quote inside it means the rule text is
/// broken (typically a missing `;`).
fn parse_msg(value: &str) -> Result<String, SkipReason> {
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .ok_or_else(|| {
            SkipReason::Invalid(format!("msg: expected a quoted string, found {value}"))
        })?;
    let mut escaped = false;
    for c in inner.chars() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => {
                return invalid(format!("msg: unescaped '\"' in {value} (missing ';'?)"))
            }
            _ => escaped = false,
        }
    }
    Ok(unescape(inner))
}

fn num(kw: &str, v: &str) -> Result<NumCmp, SkipReason> {
    NumCmp::parse(v).map_err(|e| SkipReason::Invalid(format!("{kw}: {e}")))
}

fn parse_num<T: std::str::FromStr>(kw: &str, v: &str) -> Result<T, SkipReason> {
    v.trim()
        .parse()
        .map_err(|_| SkipReason::Invalid(format!("{kw}: invalid number {v:?}")))
}

/// Decides which side of a transaction each list inspects and rejects what cannot be honoured.
fn resolve_sides(sig: &mut Signature) -> Result<(), SkipReason> {
    let detection_events = sig.app_events.iter().any(|e| e.proto.is_none());
    let tls_match = sig.tls_version.map(|_| BufferProto::Tls);
    let event_protos = sig.app_events.iter().filter_map(|e| e.proto);
    let mut protos = sig
        .lists
        .iter()
        .filter_map(|l| l.buffer.proto())
        .chain(tls_match)
        .chain(event_protos);
    if let Some(p) = protos.next() {
        if protos.any(|q| q != p) {
            return invalid("buffers of different protocols in one rule");
        }
        if detection_events {
            // Protocol detection's events belong to packets, not to transactions.
            return unsupported(
                "app-layer-event/stream-event: a packet's event (applayer_*, stream) together \
                 with a protocol's buffers or events",
            );
        }
        if let Some(app) = &sig.app_proto {
            if app != p.name() {
                return invalid(format!("{} buffer on a {app} rule", p.name()));
            }
        }
        sig.app_proto = Some(p.name().to_string());
        if sig.ip_proto == IpProto::Any && p != BufferProto::Dns {
            sig.ip_proto = IpProto::Tcp;
        }
        let mut fixed: Option<Side> =
            sig.flow
                .to_server
                .map(|ts| if ts { Side::Request } else { Side::Response });
        if sig.transactional {
            // Each buffer keeps its own side; one that has both is the request's, as Suricata.
            for l in sig.lists.iter_mut().filter(|l| l.side == Side::Both) {
                l.side = Side::Request;
            }
        }
        if fixed.is_none() {
            fixed = sig.lists.iter().map(|l| l.side).find(|s| *s != Side::Both);
        }
        // Without a direction, a rule whose buffers exist on both sides stays `Both`: as in
        // Suricata, each side of a transaction is inspected (and may alert) on its own.
        if let Some(side) = fixed {
            for l in sig.lists.iter_mut().filter(|l| l.side == Side::Both) {
                l.side = side;
            }
        }
        if sig.transactional && sig.flow.to_server.is_some() {
            return invalid("a '=>' rule cannot have a flow direction");
        }
        if let Some(ts) = sig.flow.to_server {
            let want = if ts { Side::Request } else { Side::Response };
            if sig.lists.iter().any(|l| l.side != want) {
                return invalid("flow direction contradicts the buffers' direction");
            }
        }
    } else if sig.transactional {
        return invalid("a '=>' rule needs an application-layer buffer");
    }
    if let Some(app) = &sig.app_proto {
        // Protocols with a parser are exactly those that fill buffers.
        if !BufferProto::ALL.iter().any(|p| p.name() == app) {
            sig.waiting_for = Some(format!("{app} parser"));
        }
    }
    Ok(())
}

/// Header buffers (`tcp.hdr` …) as Suricata sets them up: the rule's protocol must carry the
/// header, and the rule inspects packets only (`SIG_FLAG_REQUIRE_PACKET`), never the stream.
fn check_header_lists(sig: &mut Signature) -> Result<(), SkipReason> {
    let Some(first) = sig.lists.iter().find(|l| l.buffer.is_header()) else {
        return Ok(());
    };
    if sig.is_tx() {
        return unsupported(format!(
            "{} in a rule on application-layer buffers",
            first.buffer.name()
        ));
    }
    if sig.stream_only {
        return invalid(format!(
            "{} inspects packets, the rule only the stream",
            first.buffer.name()
        ));
    }
    for l in &sig.lists {
        if let Some(p) = l.buffer.header_transport() {
            if sig.ip_proto != IpProto::Any && !sig.ip_proto.matches(p) {
                return invalid(format!(
                    "{} on a rule for another protocol",
                    l.buffer.name()
                ));
            }
        }
    }
    sig.packet_only = true;
    Ok(())
}

/// Suricata's choice when the rule names none: the longest positive content (ties: the first).
/// Header buffers are not prefiltered: few rules use them (none in ET Open), so a rule whose
/// contents are all in headers is evaluated on every packet of its ports instead of getting
/// databases of its own.
fn choose_prefilter(sig: &Signature) -> Option<(usize, usize)> {
    let mut best: Option<((usize, usize), usize)> = None;
    for (li, list) in sig.lists.iter().enumerate() {
        if list.buffer.is_header() {
            continue;
        }
        let mut decoded = false;
        for (mi, m) in list.matches.iter().enumerate() {
            match m {
                Match::Base64Data => decoded = true,
                Match::Content(c) if !decoded && !c.negated => {
                    if c.fast_pattern != FastPattern::Auto {
                        return Some((li, mi));
                    }
                    let len = c.pattern.len();
                    if best.is_none_or(|(_, l)| len > l) {
                        best = Some(((li, mi), len));
                    }
                }
                _ => {}
            }
        }
    }
    best.map(|(at, _)| at)
}

fn parse_flow(value: &str, flow: &mut FlowOpts) -> Result<(), SkipReason> {
    for part in value.split(',') {
        match part.trim() {
            "established" => flow.established = true,
            "not_established" => flow.not_established = true,
            "stateless" => flow.stateless = true,
            "to_server" | "from_client" => flow.to_server = Some(true),
            "to_client" | "from_server" => flow.to_server = Some(false),
            "only_stream" => flow.only_stream = true,
            "no_stream" => flow.no_stream = true,
            "only_frag" => flow.only_frag = true,
            "no_frag" => flow.no_frag = true,
            other => return invalid(format!("flow: unknown option {other:?}")),
        }
    }
    if flow.established && flow.not_established {
        return invalid("flow: established and not_established together");
    }
    Ok(())
}

fn parse_names(ctx: &mut CompileContext<'_>, names: &str) -> Result<(Vec<u32>, bool), SkipReason> {
    let names = names.trim();
    let (parts, all): (Vec<&str>, bool) = if names.contains('|') {
        (names.split('|').collect(), false)
    } else {
        (names.split('&').collect(), true)
    };
    let mut ids = Vec::with_capacity(parts.len());
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            return invalid("flowbits: empty name");
        }
        ids.push(ctx.intern(p));
    }
    Ok((ids, all))
}

fn parse_flowbits(
    value: &str,
    ctx: &mut CompileContext<'_>,
    sig: &mut Signature,
) -> Result<(), SkipReason> {
    let (cmd, names) = match value.split_once(',') {
        Some((c, n)) => (c.trim(), Some(n)),
        None => (value.trim(), None),
    };
    if cmd == "noalert" {
        sig.noalert = true;
        return Ok(());
    }
    let names = names.ok_or_else(|| SkipReason::Invalid(format!("flowbits:{cmd} needs a name")))?;
    let (bits, all) = parse_names(ctx, names)?;
    let op = match cmd {
        "isset" => FlowbitOp::IsSet { bits, all },
        "isnotset" => FlowbitOp::IsNotSet { bits, all },
        "set" | "unset" | "toggle" if !all && bits.len() > 1 => {
            return invalid(format!("flowbits:{cmd} cannot use '|'"))
        }
        "set" => FlowbitOp::Set(bits),
        "unset" => FlowbitOp::Unset(bits),
        "toggle" => FlowbitOp::Toggle(bits),
        other => return invalid(format!("flowbits: unknown command {other:?}")),
    };
    match op {
        FlowbitOp::IsSet { .. } | FlowbitOp::IsNotSet { .. } => sig.flowbit_checks.push(op),
        _ => sig.flowbit_actions.push(op),
    }
    Ok(())
}

fn parse_flowint(
    value: &str,
    ctx: &mut CompileContext<'_>,
    sig: &mut Signature,
) -> Result<(), SkipReason> {
    let parts: Vec<&str> = value.split(',').map(str::trim).collect();
    let name = ctx.intern(&format!("{}{}", crate::engine::FLOWINT_PREFIX, parts[0]));
    let val = |s: Option<&&str>| -> Result<Val, SkipReason> {
        let s = s.ok_or_else(|| SkipReason::Invalid("flowint: missing value".into()))?;
        s.parse::<i64>()
            .map(Val::Const)
            .map_err(|_| SkipReason::Unsupported(format!("flowint: value {s:?} (only numbers)")))
    };
    use std::cmp::Ordering::*;
    let (op, check) = match parts.get(1).copied() {
        Some("=") => (FlowintOp::Set(name, val(parts.get(2))?), false),
        Some("+") => (FlowintOp::Add(name, val(parts.get(2))?), false),
        Some("-") => (FlowintOp::Sub(name, val(parts.get(2))?), false),
        Some("==") => (FlowintOp::Cmp(name, Equal, true, val(parts.get(2))?), true),
        Some("!=") => (FlowintOp::Cmp(name, Equal, false, val(parts.get(2))?), true),
        Some("<") => (FlowintOp::Cmp(name, Less, true, val(parts.get(2))?), true),
        Some(">") => (
            FlowintOp::Cmp(name, Greater, true, val(parts.get(2))?),
            true,
        ),
        Some("<=") => (
            FlowintOp::Cmp(name, Greater, false, val(parts.get(2))?),
            true,
        ),
        Some(">=") => (FlowintOp::Cmp(name, Less, false, val(parts.get(2))?), true),
        Some("isset") => (FlowintOp::IsSet(name, true), true),
        Some("notset") | Some("isnotset") => (FlowintOp::IsSet(name, false), true),
        other => return invalid(format!("flowint: unknown operator {other:?}")),
    };
    if check {
        sig.flowint_checks.push(op);
    } else {
        sig.flowint_actions.push(op);
    }
    Ok(())
}

fn flag_bits(s: &str, table: &[(char, u8)], kw: &str) -> Result<u8, SkipReason> {
    let mut bits = 0;
    for ch in s.chars() {
        let up = ch.to_ascii_uppercase();
        match table.iter().find(|(c, _)| *c == up) {
            Some((_, b)) => bits |= b,
            None if ch == '0' => {}
            None => return invalid(format!("{kw}: unknown flag {ch:?}")),
        }
    }
    Ok(bits)
}

const TCP_FLAG_NAMES: &[(char, u8)] = &[
    ('F', 0x01),
    ('S', 0x02),
    ('R', 0x04),
    ('P', 0x08),
    ('A', 0x10),
    ('U', 0x20),
    ('E', 0x40),
    ('C', 0x80),
    ('1', 0x80),
    ('2', 0x40),
];

fn split_mode(s: &str) -> (FlagMode, &str) {
    let s = s.trim();
    if let Some(r) = s.strip_prefix('!') {
        (FlagMode::Not, r)
    } else if let Some(r) = s.strip_prefix('*') {
        (FlagMode::Any, r)
    } else if let Some(r) = s.strip_prefix('+') {
        (FlagMode::Plus, r)
    } else if let Some(r) = s.strip_suffix('+') {
        (FlagMode::Plus, r)
    } else if let Some(r) = s.strip_suffix('*') {
        (FlagMode::Any, r)
    } else {
        (FlagMode::Exact, s)
    }
}

fn parse_flags(value: &str) -> Result<HeaderMatch, SkipReason> {
    let (main, ignore) = match value.split_once(',') {
        Some((m, i)) => (m, Some(i)),
        None => (value, None),
    };
    let (mode, letters) = split_mode(main);
    let bits = flag_bits(letters, TCP_FLAG_NAMES, "flags")?;
    let ignore = match ignore {
        Some(i) => flag_bits(i.trim(), TCP_FLAG_NAMES, "flags")?,
        None => 0,
    };
    Ok(HeaderMatch::TcpFlags { bits, mode, ignore })
}

fn parse_fragbits(value: &str) -> Result<HeaderMatch, SkipReason> {
    let (mode, letters) = split_mode(value);
    let bits = flag_bits(letters, &[('M', 1), ('D', 2), ('R', 4)], "fragbits")?;
    Ok(HeaderMatch::FragBits { bits, mode })
}

fn parse_ipopts(value: &str) -> Result<HeaderMatch, SkipReason> {
    use vigil_parsers::packet::*;
    let bit = match value.trim() {
        "rr" => IPOPT_RR,
        "lsrr" => IPOPT_LSRR,
        "ssrr" => IPOPT_SSRR,
        "ts" => IPOPT_TS,
        "sec" => IPOPT_SEC,
        "satid" => IPOPT_SID,
        "eol" => IPOPT_EOL,
        "nop" => IPOPT_NOP,
        "any" => 0xffff,
        other => return invalid(format!("ipopts: unknown option {other:?}")),
    };
    Ok(HeaderMatch::IpOpts(bit))
}

#[cfg(test)]
#[path = "sig_tests.rs"]
mod tests;
