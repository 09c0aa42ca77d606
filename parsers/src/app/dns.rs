//! DNS over UDP and TCP, logged as Suricata 8's EVE `dns` object (version 3).
//!
//! The wire parser is written by hand rather than on hickory-proto's decoder: Suricata logs
//! messages that a strict decoder rejects, and its output depends on how it got there. It keeps
//! names up to 1025 bytes (hickory stops at 255) and flags them `rrname_truncated`; it accepts a
//! name that runs into the end of its buffer without a root label; a broken authority or
//! additional section still logs the queries and answers (`INVALID_AUTHORITIES`/`_ADDITIONALS`);
//! an rdata of length 0 is logged as an empty string; a self-pointing compression pointer after a
//! first jump ends the name (`INFINITE_LOOP`) instead of failing. Matching those cases
//! (dns-truncated-rname, dns-corrupt-additionals, dns-answer-emptydata) needs our own walk.
//!
//! Transactions follow Suricata 8: every parsed message (request or response) is its own
//! transaction with the next per-flow number; EVE `tx_id` is that number. A response is also
//! matched by DNS id to an outstanding request (`DnsMessage::request_tx_id`) so the caller can
//! pair them; Suricata has no unsolicited-response event any more, so none is raised.

use std::borrow::Cow;
use std::collections::VecDeque;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::{AppOutput, AppParser, AppProto, Direction, Probe};

/// The protocol events this parser raises (Suricata's names), the ones a rule can name with
/// `app-layer-event:dns.<name in lower case>`.
pub const EVENTS: &[&str] = &[
    "MALFORMED_DATA",
    "NOT_A_REQUEST",
    "NOT_A_RESPONSE",
    "Z_FLAG_SET",
    "INVALID_OPCODE",
    "INVALID_ADDITIONALS",
    "INVALID_AUTHORITIES",
    "NAME_TOO_LONG",
    "INFINITE_LOOP",
    "TOO_MANY_LABELS",
];

/// Other names rules give these events: Suricata 8's rules drop the "A".
pub const EVENT_ALIASES: &[(&str, &str)] = &[
    ("NOT_REQUEST", "NOT_A_REQUEST"),
    ("NOT_RESPONSE", "NOT_A_RESPONSE"),
];

const HEADER_LEN: usize = 12;
/// Longest name kept, in presentation bytes (Suricata's MAX_NAME_LEN, from dnsmasq).
const MAX_NAME_LEN: usize = 1025;
/// Labels plus pointers followed in one name before giving up; also bounds pointer loops.
const MAX_NAME_STEPS: usize = 255;
/// A TCP message is at most a 2-byte length plus 65535 bytes.
const TCP_MAX_FRAME: usize = 2 + 0xffff;
/// Outstanding requests remembered for response pairing (Suricata keeps 500 per flow).
const MAX_PENDING: usize = 512;

const QR: u16 = 0x8000;
const AA: u16 = 0x0400;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;
const RA: u16 = 0x0080;
const Z: u16 = 0x0040;

pub const RRTYPE_A: u16 = 1;
pub const RRTYPE_NS: u16 = 2;
pub const RRTYPE_CNAME: u16 = 5;
pub const RRTYPE_SOA: u16 = 6;
pub const RRTYPE_NULL: u16 = 10;
pub const RRTYPE_PTR: u16 = 12;
pub const RRTYPE_MX: u16 = 15;
pub const RRTYPE_TXT: u16 = 16;
pub const RRTYPE_AAAA: u16 = 28;
pub const RRTYPE_SRV: u16 = 33;
pub const RRTYPE_OPT: u16 = 41;
pub const RRTYPE_SSHFP: u16 = 44;

/// Record types Suricata names; any other type is logged as its number.
const RRTYPE_NAMES: &[(u16, &str)] = &[
    (1, "A"),
    (2, "NS"),
    (3, "MD"),
    (4, "MF"),
    (5, "CNAME"),
    (6, "SOA"),
    (7, "MB"),
    (8, "MG"),
    (9, "MR"),
    (10, "NULL"),
    (11, "WKS"),
    (12, "PTR"),
    (13, "HINFO"),
    (14, "MINFO"),
    (15, "MX"),
    (16, "TXT"),
    (17, "RP"),
    (18, "AFSDB"),
    (19, "X25"),
    (20, "ISDN"),
    (21, "RT"),
    (22, "NSAP"),
    (23, "NSAPPTR"),
    (24, "SIG"),
    (25, "KEY"),
    (26, "PX"),
    (27, "GPOS"),
    (28, "AAAA"),
    (29, "LOC"),
    (30, "NXT"),
    (33, "SRV"),
    (34, "ATMA"),
    (35, "NAPTR"),
    (36, "KX"),
    (37, "CERT"),
    (38, "A6"),
    (39, "DNAME"),
    (41, "OPT"),
    (42, "APL"),
    (43, "DS"),
    (44, "SSHFP"),
    (45, "IPSECKEY"),
    (46, "RRSIG"),
    (47, "NSEC"),
    (48, "DNSKEY"),
    (49, "DHCID"),
    (50, "NSEC3"),
    (51, "NSEC3PARAM"),
    (52, "TLSA"),
    (55, "HIP"),
    (59, "CDS"),
    (60, "CDNSKEY"),
    (65, "HTTPS"),
    (99, "SPF"),
    (249, "TKEY"),
    (250, "TSIG"),
    (254, "MAILA"),
    (255, "ANY"),
    (256, "URI"),
];

const RCODE_NAMES: [&str; 11] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE",
];

/// Suricata's name for a record type (`"AAAA"`), or its number when it has none.
pub fn rrtype_name(rrtype: u16) -> Cow<'static, str> {
    match RRTYPE_NAMES.iter().find(|(t, _)| *t == rrtype) {
        Some((_, n)) => Cow::Borrowed(n),
        None => Cow::Owned(rrtype.to_string()),
    }
}

/// A record type from a config name (`aaaa`, `MX`), as Suricata's `types:` list accepts them.
pub fn rrtype_from_name(name: &str) -> Option<u16> {
    RRTYPE_NAMES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map(|(t, _)| *t)
}

fn rcode_name(flags: u16) -> Cow<'static, str> {
    let rc = usize::from(flags & 0xf);
    match RCODE_NAMES.get(rc) {
        Some(n) => Cow::Borrowed(n),
        None => Cow::Owned(rc.to_string()),
    }
}

/// Suricata's JsonBuilder `set_string_from_bytes`: valid UTF-8 as is; otherwise ASCII bytes
/// as is and every byte >= 0x80 as `\xhh`.
fn eve_str(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => {
            let mut out = String::with_capacity(bytes.len() * 2);
            for &b in bytes {
                if b < 0x80 {
                    out.push(char::from(b));
                } else {
                    let mut h = crate::text::InlineStr::<4>::new();
                    h.push_str("\\x");
                    h.push_hex_byte(b);
                    out.push_str(&h);
                }
            }
            Cow::Owned(out)
        }
    }
}

/// Suricata's address format: dotted quad, or 8 zero-padded hex groups; other lengths print "".
fn print_addr(addr: &[u8]) -> crate::text::AddrStr {
    crate::text::eve_addr(addr)
}

fn hex(bytes: &[u8], sep: &str) -> String {
    let mut s = String::with_capacity(bytes.len() * (2 + sep.len()));
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push_str(sep);
        }
        let mut h = crate::text::InlineStr::<2>::new();
        h.push_hex_byte(*b);
        s.push_str(&h);
    }
    s
}

/// Which record types are logged (Suricata's `types:`), as a bitset over types 0..320 which
/// covers every type Suricata can name; unnamed types are never selected by a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RrTypeFilter {
    all: bool,
    bits: [u64; 5],
}

impl Default for RrTypeFilter {
    fn default() -> Self {
        RrTypeFilter {
            all: true,
            bits: [0; 5],
        }
    }
}

impl RrTypeFilter {
    /// Only these types (Suricata ignores names it does not know).
    pub fn only(types: &[u16]) -> Self {
        let mut bits = [0u64; 5];
        for &t in types {
            if let Some(w) = bits.get_mut(usize::from(t / 64)) {
                *w |= 1 << (t % 64);
            }
        }
        RrTypeFilter { all: false, bits }
    }

    pub fn allows(&self, rrtype: u16) -> bool {
        self.all
            || self
                .bits
                .get(usize::from(rrtype / 64))
                .is_some_and(|w| w & (1 << (rrtype % 64)) != 0)
    }
}

/// The DNS logger and parser settings; `Default` is Suricata 8's default configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// `requests:` — log request messages.
    pub log_requests: bool,
    /// `responses:` — log response messages.
    pub log_responses: bool,
    /// `formats: [detailed]` — the `answers` array.
    pub detailed: bool,
    /// `formats: [grouped]` — the `grouped` object. Suricata's default has both formats.
    pub grouped: bool,
    /// `types:` — a message is logged when one of its queries has a selected type, and only
    /// selected queries are listed.
    pub types: RrTypeFilter,
    /// Records kept per section; the rest are still walked (so events and later sections stay
    /// right) but dropped. Suricata has no limit; a 64 KiB message holds at most ~6000.
    pub max_records: usize,
    /// Log the rdata of types Suricata leaves out (HTTPS, SVCB, CAA, DNSKEY, ...) as hex under
    /// `rdata`. Off: Suricata prints no rdata for them.
    pub rdata_hex_for_other_types: bool,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            log_requests: true,
            log_responses: true,
            detailed: true,
            grouped: true,
            types: RrTypeFilter::default(),
            max_records: 1024,
            rdata_hex_for_other_types: false,
        }
    }
}

/// The formatting part of the config, copied into each message so it serializes on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LogFormat {
    detailed: bool,
    grouped: bool,
    types: RrTypeFilter,
    rdata_hex: bool,
}

/// A name in presentation form (labels joined by `.`, no trailing dot, raw label bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsName {
    pub value: Vec<u8>,
    /// Cut at 1025 bytes or at the label limit.
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsQuery {
    pub name: DnsName,
    pub rrtype: u16,
    pub rrclass: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSoa {
    pub mname: DnsName,
    pub rname: DnsName,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSrv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: DnsName,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSshfp {
    pub algo: u8,
    pub fp_type: u8,
    pub fingerprint: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsOptEntry {
    pub code: u16,
    pub data: Vec<u8>,
}

/// Decoded rdata, by the shapes Suricata logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsRdata {
    /// A or AAAA: the raw address bytes (any length; odd lengths print as "").
    Addr(Vec<u8>),
    /// CNAME, NS, PTR, and MX (preference dropped, as Suricata does).
    Name(DnsName),
    /// TXT: each character-string; each is its own entry in `answers`.
    Txt(Vec<Vec<u8>>),
    Null(Vec<u8>),
    Soa(DnsSoa),
    Srv(DnsSrv),
    Sshfp(DnsSshfp),
    Opt(Vec<DnsOptEntry>),
    /// Every other type (DNAME, CAA, HTTPS, SVCB, DNSSEC, ...): raw rdata.
    Other(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    pub name: DnsName,
    pub rrtype: u16,
    pub rrclass: u16,
    pub ttl: u32,
    pub rdata: DnsRdata,
}

/// One parsed DNS message: one Suricata transaction and one EVE `dns` event.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsMessage {
    /// Per-flow transaction number (0-based), counted over requests and responses alike.
    pub tx_id: u64,
    /// For a response: the transaction of the outstanding request with the same DNS id.
    pub request_tx_id: Option<u64>,
    /// Parsed by the response side (`type: response`), whatever its QR bit says.
    pub is_response: bool,
    pub id: u16,
    pub flags: u16,
    pub queries: Vec<DnsQuery>,
    pub answers: Vec<DnsRecord>,
    pub authorities: Vec<DnsRecord>,
    pub additionals: Vec<DnsRecord>,
    pub invalid_authorities: bool,
    pub invalid_additionals: bool,
    /// Whether the configuration asks for this message in EVE (requests/responses/types).
    /// Detection uses every message regardless.
    pub log: bool,
    format: LogFormat,
}

impl DnsMessage {
    /// Query names as raw bytes, for `dns.query` / `dns.queries.rrname`.
    pub fn queries_rrnames(&self) -> impl Iterator<Item = &[u8]> {
        self.queries.iter().map(|q| q.name.value.as_slice())
    }

    /// Answer names as raw bytes, for `dns.answers.rrname`.
    pub fn answer_names(&self) -> impl Iterator<Item = &[u8]> {
        self.answers.iter().map(|r| r.name.value.as_slice())
    }

    /// Query types, for `dns.rrtype`.
    pub fn rrtypes(&self) -> impl Iterator<Item = u16> + '_ {
        self.queries.iter().map(|q| q.rrtype)
    }

    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }

    pub fn rcode(&self) -> u8 {
        (self.flags & 0xf) as u8
    }

    pub fn is_nxdomain(&self) -> bool {
        self.rcode() == 3
    }

    pub fn is_truncated(&self) -> bool {
        self.flags & TC != 0
    }
}

// ---------------------------------------------------------------------------------------------
// Wire parsing. Positions are indexes into the message (header included, TCP length excluded);
// every read goes through `get`, so no input can index out of bounds.

#[derive(Debug, Default, Clone, Copy)]
struct NameFlags {
    truncated: bool,
    infinite_loop: bool,
    label_limit: bool,
}

/// Parsing failed: Suricata's nom error/incomplete, both reported as MALFORMED_DATA.
#[derive(Debug)]
struct Malformed;

fn be16(msg: &[u8], pos: usize) -> Result<u16, Malformed> {
    match msg.get(pos..pos.checked_add(2).ok_or(Malformed)?) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err(Malformed),
    }
}

fn be32(msg: &[u8], pos: usize) -> Result<u32, Malformed> {
    match msg.get(pos..pos.checked_add(4).ok_or(Malformed)?) {
        Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(Malformed),
    }
}

/// Reads a name at `start`; before the first pointer the name may not pass `end` (the end of
/// the rdata or of the message), after it the whole message is reachable. Returns the name and
/// the position after it (after the first pointer when one was followed).
fn parse_name(
    msg: &[u8],
    start: usize,
    end: usize,
    flags: &mut NameFlags,
) -> Result<(DnsName, usize), Malformed> {
    let mut pos = start;
    let mut limit = end.min(msg.len());
    let mut after_pointer: Option<usize> = None;
    let mut name: Vec<u8> = Vec::with_capacity(32);
    let mut truncated = false;
    let mut steps = 0usize;
    // A name that runs into the end of its buffer ends there (Suricata accepts it).
    while let Some(&len) = msg.get(pos).filter(|_| pos < limit) {
        if len == 0 {
            pos += 1;
            break;
        } else if len & 0xc0 == 0 {
            let l = usize::from(len);
            let label = msg
                .get(pos + 1..pos + 1 + l)
                .filter(|_| pos + 1 + l <= limit);
            let label = label.ok_or(Malformed)?;
            if !truncated {
                if !name.is_empty() {
                    name.push(b'.');
                }
                name.extend_from_slice(label);
            }
            pos += 1 + l;
        } else if len & 0xc0 == 0xc0 {
            if pos + 2 > limit {
                return Err(Malformed);
            }
            let offset = usize::from(be16(msg, pos)? & 0x3fff);
            if offset > msg.len() {
                return Err(Malformed);
            }
            // Points at itself (Suricata compares the remaining buffers, so inside an rdata
            // that does not end the message the first hop is still taken).
            if offset == pos && limit == msg.len() {
                flags.infinite_loop = true;
                if after_pointer.is_some() {
                    break;
                }
                return Err(Malformed);
            }
            if after_pointer.is_none() {
                after_pointer = Some(pos + 2);
            }
            pos = offset;
            limit = msg.len();
        } else {
            // 0x40 / 0x80 label types are not used on the wire.
            return Err(Malformed);
        }
        // Bounds work per name and breaks pointer cycles (A -> B -> A).
        steps += 1;
        if steps > MAX_NAME_STEPS {
            flags.label_limit = true;
            if after_pointer.is_some() {
                truncated = true;
                break;
            }
            return Err(Malformed);
        }
        if name.len() > MAX_NAME_LEN {
            name.truncate(MAX_NAME_LEN);
            truncated = true;
            if after_pointer.is_some() {
                break;
            }
        }
    }
    if truncated {
        flags.truncated = true;
    }
    Ok((
        DnsName {
            value: name,
            truncated,
        },
        after_pointer.unwrap_or(pos),
    ))
}

fn parse_rdata(
    msg: &[u8],
    rrtype: u16,
    start: usize,
    end: usize,
    flags: &mut NameFlags,
) -> Result<DnsRdata, Malformed> {
    let raw = || msg.get(start..end).unwrap_or_default().to_vec();
    // Fixed fields must lie inside the rdata.
    let need = |n: usize| {
        if start + n <= end {
            Ok(())
        } else {
            Err(Malformed)
        }
    };
    Ok(match rrtype {
        RRTYPE_A | RRTYPE_AAAA => DnsRdata::Addr(raw()),
        RRTYPE_CNAME | RRTYPE_NS | RRTYPE_PTR => {
            DnsRdata::Name(parse_name(msg, start, end, flags)?.0)
        }
        RRTYPE_MX => {
            need(2)?;
            DnsRdata::Name(parse_name(msg, start + 2, end, flags)?.0)
        }
        RRTYPE_SRV => {
            need(6)?;
            DnsRdata::Srv(DnsSrv {
                priority: be16(msg, start)?,
                weight: be16(msg, start + 2)?,
                port: be16(msg, start + 4)?,
                target: parse_name(msg, start + 6, end, flags)?.0,
            })
        }
        RRTYPE_SOA => {
            let (mname, p) = parse_name(msg, start, end, flags)?;
            let (rname, p) = parse_name(msg, p, end, flags)?;
            if p + 20 > end {
                return Err(Malformed);
            }
            DnsRdata::Soa(DnsSoa {
                mname,
                rname,
                serial: be32(msg, p)?,
                refresh: be32(msg, p + 4)?,
                retry: be32(msg, p + 8)?,
                expire: be32(msg, p + 12)?,
                minimum: be32(msg, p + 16)?,
            })
        }
        RRTYPE_TXT => {
            let mut strings = Vec::new();
            let mut p = start;
            while p < end {
                let l = usize::from(*msg.get(p).ok_or(Malformed)?);
                if p + 1 + l > end {
                    return Err(Malformed);
                }
                strings.push(msg.get(p + 1..p + 1 + l).ok_or(Malformed)?.to_vec());
                p += 1 + l;
            }
            DnsRdata::Txt(strings)
        }
        RRTYPE_NULL => DnsRdata::Null(raw()),
        RRTYPE_SSHFP => {
            need(2)?;
            DnsRdata::Sshfp(DnsSshfp {
                algo: *msg.get(start).ok_or(Malformed)?,
                fp_type: *msg.get(start + 1).ok_or(Malformed)?,
                fingerprint: msg.get(start + 2..end).unwrap_or_default().to_vec(),
            })
        }
        RRTYPE_OPT => {
            let mut opts = Vec::new();
            let mut p = start;
            while p < end {
                let code = be16(msg, p)?;
                let l = usize::from(be16(msg, p + 2)?);
                if p + 4 + l > end {
                    return Err(Malformed);
                }
                let data = msg.get(p + 4..p + 4 + l).ok_or(Malformed)?.to_vec();
                opts.push(DnsOptEntry { code, data });
                p += 4 + l;
            }
            DnsRdata::Opt(opts)
        }
        _ => DnsRdata::Other(raw()),
    })
}

/// Parses `count` resource records from `pos`; keeps at most `cap`.
fn parse_records(
    msg: &[u8],
    mut pos: usize,
    count: u16,
    cap: usize,
    flags: &mut NameFlags,
) -> Result<(Vec<DnsRecord>, usize), Malformed> {
    let mut out = Vec::with_capacity(usize::from(count).min(cap).min(64));
    for _ in 0..count {
        let (name, p) = parse_name(msg, pos, msg.len(), flags)?;
        let rrtype = be16(msg, p)?;
        let rrclass = be16(msg, p + 2)?;
        let ttl = be32(msg, p + 4)?;
        let rdlen = usize::from(be16(msg, p + 8)?);
        let start = p + 10;
        let end = start + rdlen;
        if end > msg.len() {
            return Err(Malformed);
        }
        let rdata = parse_rdata(msg, rrtype, start, end, flags)?;
        if out.len() < cap {
            out.push(DnsRecord {
                name,
                rrtype,
                rrclass,
                ttl,
                rdata,
            });
        }
        pos = end;
    }
    Ok((out, pos))
}

struct Header {
    id: u16,
    flags: u16,
    qd: u16,
    an: u16,
    ns: u16,
    ar: u16,
}

fn parse_header(msg: &[u8]) -> Option<Header> {
    Some(Header {
        id: be16(msg, 0).ok()?,
        flags: be16(msg, 2).ok()?,
        qd: be16(msg, 4).ok()?,
        an: be16(msg, 6).ok()?,
        ns: be16(msg, 8).ok()?,
        ar: be16(msg, 10).ok()?,
    })
}

/// Suricata's header plausibility check against the message length `len`.
fn header_valid(h: &Header, len: usize) -> bool {
    let records = usize::from(h.qd) + usize::from(h.an) + usize::from(h.ns) + usize::from(h.ar);
    if 2 * records > len {
        return false;
    }
    if records == 0 && len > HEADER_LEN {
        return false;
    }
    // A request must ask something.
    !(h.flags & QR == 0 && h.qd == 0)
}

struct Parsed {
    header: Header,
    queries: Vec<DnsQuery>,
    answers: Vec<DnsRecord>,
    authorities: Vec<DnsRecord>,
    additionals: Vec<DnsRecord>,
    invalid_authorities: bool,
    invalid_additionals: bool,
    flags: NameFlags,
}

/// Header, questions and answers must parse; a broken authority section drops it and the
/// additionals, a broken additional section drops only itself (Suricata 8).
fn parse_body(msg: &[u8], header: Header, cap: usize) -> Result<Parsed, Malformed> {
    let mut flags = NameFlags::default();
    let mut pos = HEADER_LEN;
    let mut queries = Vec::with_capacity(usize::from(header.qd).min(cap).min(8));
    for _ in 0..header.qd {
        let (name, p) = parse_name(msg, pos, msg.len(), &mut flags)?;
        let rrtype = be16(msg, p)?;
        let rrclass = be16(msg, p + 2)?;
        if queries.len() < cap {
            queries.push(DnsQuery {
                name,
                rrtype,
                rrclass,
            });
        }
        pos = p + 4;
    }
    let (answers, pos) = parse_records(msg, pos, header.an, cap, &mut flags)?;
    let (authorities, additionals, invalid_authorities, invalid_additionals) =
        match parse_records(msg, pos, header.ns, cap, &mut flags) {
            Err(Malformed) => (Vec::new(), Vec::new(), true, false),
            Ok((auth, pos)) => match parse_records(msg, pos, header.ar, cap, &mut flags) {
                Ok((add, _)) => (auth, add, false, false),
                Err(Malformed) => (auth, Vec::new(), false, true),
            },
        };
    Ok(Parsed {
        header,
        queries,
        answers,
        authorities,
        additionals,
        invalid_authorities,
        invalid_additionals,
        flags,
    })
}

// ---------------------------------------------------------------------------------------------
// Probes.

/// Suricata's probe on one message of declared length `dlen` of which `msg` holds a prefix.
fn probe_message(msg: &[u8], dlen: usize) -> Probe {
    let msg = msg.get(..dlen).unwrap_or(msg);
    let Some(h) = parse_header(msg) else {
        return if dlen >= HEADER_LEN {
            Probe::NeedMore
        } else {
            Probe::NoMatch
        };
    };
    if !header_valid(&h, dlen) {
        return Probe::NoMatch;
    }
    if msg.len() < dlen {
        // Header only so far; the sections decide once the message is complete.
        return Probe::NeedMore;
    }
    match parse_body(msg, h, 0) {
        Ok(_) => Probe::Match,
        Err(Malformed) => Probe::NoMatch,
    }
}

/// One UDP datagram: a plausible header whose questions and answers parse.
pub fn probe_udp(_dir: Direction, data: &[u8]) -> Probe {
    match probe_message(data, data.len()) {
        Probe::Match => Probe::Match,
        _ => Probe::NoMatch,
    }
}

/// The start of a TCP direction: a 2-byte length then a message as for UDP.
pub fn probe_tcp(_dir: Direction, data: &[u8]) -> Probe {
    match be16(data, 0) {
        Err(Malformed) => Probe::NeedMore,
        Ok(dlen) => probe_message(data.get(2..).unwrap_or_default(), usize::from(dlen)),
    }
}

// ---------------------------------------------------------------------------------------------
// Per-flow parser.

#[derive(Debug, Default)]
struct TcpSide {
    /// A partial frame (length prefix included), at most `TCP_MAX_FRAME` bytes.
    buf: Vec<u8>,
    /// Bytes were lost; resume at the next chunk that probes as DNS.
    gap: bool,
}

pub struct DnsParser {
    tcp: bool,
    max_records: usize,
    log_requests: bool,
    log_responses: bool,
    format: LogFormat,
    /// Transactions created so far in this flow.
    tx_count: u64,
    /// (DNS id, tx) of requests not yet answered, oldest first.
    pending: VecDeque<(u16, u64)>,
    sides: [TcpSide; 2],
    /// A TCP message failed to parse: Suricata stops the app layer for the flow.
    stopped: bool,
}

fn side(dir: Direction) -> usize {
    match dir {
        Direction::ToServer => 0,
        Direction::ToClient => 1,
    }
}

impl DnsParser {
    fn new(config: DnsConfig, tcp: bool) -> Self {
        DnsParser {
            tcp,
            max_records: config.max_records,
            log_requests: config.log_requests,
            log_responses: config.log_responses,
            format: LogFormat {
                detailed: config.detailed,
                grouped: config.grouped,
                types: config.types,
                rdata_hex: config.rdata_hex_for_other_types,
            },
            tx_count: 0,
            pending: VecDeque::new(),
            sides: Default::default(),
            stopped: false,
        }
    }

    pub fn new_udp(config: DnsConfig) -> Self {
        Self::new(config, false)
    }

    pub fn new_tcp(config: DnsConfig) -> Self {
        Self::new(config, true)
    }

    /// Suricata attaches message-level errors to the newest transaction, if any.
    fn last_tx(&self) -> Option<u64> {
        self.tx_count.checked_sub(1)
    }

    fn event(&self, out: &mut AppOutput, name: &'static str, dir: Direction, tx: Option<u64>) {
        out.event(AppProto::Dns, name, dir, tx);
    }

    /// Parses one whole message; false when the message is unusable (TCP then stops).
    fn parse_message(&mut self, dir: Direction, msg: &[u8], out: &mut AppOutput) -> bool {
        let Some(header) = parse_header(msg).filter(|h| header_valid(h, msg.len())) else {
            // Not DNS: ignored without an event; fatal only for a TCP stream.
            return !self.tcp;
        };
        let is_response = dir == Direction::ToClient;
        let flags = header.flags;
        let p = match parse_body(msg, header, self.max_records) {
            Ok(p) => p,
            Err(Malformed) => {
                self.event(out, "MALFORMED_DATA", dir, self.last_tx());
                return false;
            }
        };
        if !is_response && flags & QR != 0 {
            self.event(out, "NOT_A_REQUEST", dir, self.last_tx());
            return false;
        }
        let tx_id = self.tx_count;
        self.tx_count += 1;
        let id = p.header.id;
        let request_tx_id = if is_response {
            self.pending
                .iter()
                .position(|&(pid, _)| pid == id)
                .and_then(|i| self.pending.remove(i))
                .map(|(_, tx)| tx)
        } else {
            if self.pending.len() >= MAX_PENDING {
                self.pending.pop_front();
            }
            self.pending.push_back((id, tx_id));
            None
        };
        let tx = Some(tx_id);
        if p.invalid_additionals {
            self.event(out, "INVALID_ADDITIONALS", dir, tx);
        }
        if p.invalid_authorities {
            self.event(out, "INVALID_AUTHORITIES", dir, tx);
        }
        if is_response && flags & QR == 0 {
            self.event(out, "NOT_A_RESPONSE", dir, tx);
        }
        if flags & Z != 0 {
            self.event(out, "Z_FLAG_SET", dir, tx);
        }
        if (flags >> 11) & 0xf >= 7 {
            self.event(out, "INVALID_OPCODE", dir, tx);
        }
        if p.flags.truncated {
            self.event(out, "NAME_TOO_LONG", dir, tx);
        }
        if p.flags.infinite_loop {
            self.event(out, "INFINITE_LOOP", dir, tx);
        }
        if p.flags.label_limit {
            self.event(out, "TOO_MANY_LABELS", dir, tx);
        }
        let wanted = if is_response {
            self.log_responses
        } else {
            self.log_requests
        };
        let types = self.format.types;
        let log = wanted && p.queries.iter().any(|q| types.allows(q.rrtype));
        out.records.push(super::AppRecord::Dns(Box::new(DnsMessage {
            tx_id,
            request_tx_id,
            is_response,
            id,
            flags,
            queries: p.queries,
            answers: p.answers,
            authorities: p.authorities,
            additionals: p.additionals,
            invalid_authorities: p.invalid_authorities,
            invalid_additionals: p.invalid_additionals,
            log,
            format: self.format,
        })));
        true
    }

    fn parse_tcp(&mut self, dir: Direction, mut data: &[u8], out: &mut AppOutput) {
        let s = side(dir);
        if self.sides[s].gap {
            // Like Suricata: the first chunk after a gap must look like the start of a frame.
            if probe_tcp(dir, data) == Probe::NoMatch {
                return;
            }
            self.sides[s].gap = false;
        }
        while !data.is_empty() && !self.stopped {
            let buf = &mut self.sides[s].buf;
            if buf.is_empty() {
                // Fast path: whole frames straight from the input.
                if let Ok(len) = be16(data, 0) {
                    let total = 2 + usize::from(len);
                    if len == 0 {
                        data = data.get(2..).unwrap_or_default();
                        continue;
                    }
                    if let Some(msg) = data.get(2..total) {
                        if !self.parse_message(dir, msg, out) {
                            self.stopped = true;
                        }
                        data = data.get(total..).unwrap_or_default();
                        continue;
                    }
                }
                buf.extend_from_slice(data);
                return;
            }
            if buf.len() < 2 {
                let take = (2 - buf.len()).min(data.len());
                buf.extend_from_slice(data.get(..take).unwrap_or_default());
                data = data.get(take..).unwrap_or_default();
                if buf.len() < 2 {
                    return;
                }
            }
            let len = usize::from(be16(buf, 0).unwrap_or(0));
            if len == 0 {
                buf.clear();
                continue;
            }
            let total = 2 + len;
            let take = total.saturating_sub(buf.len()).min(data.len());
            buf.extend_from_slice(data.get(..take).unwrap_or_default());
            data = data.get(take..).unwrap_or_default();
            if buf.len() < total {
                return;
            }
            let frame = std::mem::take(buf);
            if !self.parse_message(dir, frame.get(2..).unwrap_or_default(), out) {
                self.stopped = true;
            }
            // Keep the allocation for the next partial frame.
            let buf = &mut self.sides[s].buf;
            *buf = frame;
            buf.clear();
        }
        debug_assert!(self.sides[s].buf.len() <= TCP_MAX_FRAME);
    }
}

impl AppParser for DnsParser {
    fn parse(&mut self, dir: Direction, data: &[u8], _ts_ns: u64, out: &mut AppOutput) {
        if self.stopped || data.is_empty() {
            return;
        }
        if self.tcp {
            self.parse_tcp(dir, data, out);
        } else {
            self.parse_message(dir, data, out);
        }
    }

    fn gap(&mut self, dir: Direction, len: u64, _out: &mut AppOutput) {
        // The partial frame cannot be completed; Suricata raises no event for this.
        if self.tcp && len > 0 {
            let s = &mut self.sides[side(dir)];
            s.buf.clear();
            s.gap = true;
        }
    }

    fn end_of_stream(&mut self, dir: Direction, _ts_ns: u64, _out: &mut AppOutput) {
        // A frame cut by the close is never logged (Suricata only parses whole frames).
        self.sides[side(dir)].buf = Vec::new();
    }

    fn finish(&mut self, _ts_ns: u64, _out: &mut AppOutput) {
        // Every message was handed back when it completed.
        self.sides = Default::default();
        self.pending.clear();
    }

    fn is_done(&self) -> bool {
        self.stopped
    }
}

// ---------------------------------------------------------------------------------------------
// EVE serialization (Suricata 8 `dns`, version 3).

struct EveName<'a>(&'a [u8]);

impl Serialize for EveName<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&eve_str(self.0))
    }
}

struct EveQueries<'a>(&'a [DnsQuery], RrTypeFilter);

impl Serialize for EveQueries<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for q in self.0.iter().filter(|q| self.1.allows(q.rrtype)) {
            seq.serialize_element(&EveQuery(q))?;
        }
        seq.end()
    }
}

struct EveQuery<'a>(&'a DnsQuery);

impl Serialize for EveQuery<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let q = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("rrname", &EveName(&q.name.value))?;
        m.serialize_entry("rrtype", &rrtype_name(q.rrtype))?;
        if q.name.truncated {
            m.serialize_entry("rrname_truncated", &true)?;
        }
        m.end()
    }
}

struct EveSoa<'a>(&'a DnsSoa);

impl Serialize for EveSoa<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let soa = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("mname", &EveName(&soa.mname.value))?;
        if soa.mname.truncated {
            m.serialize_entry("mname_truncated", &true)?;
        }
        m.serialize_entry("rname", &EveName(&soa.rname.value))?;
        if soa.rname.truncated {
            m.serialize_entry("rname_truncated", &true)?;
        }
        m.serialize_entry("serial", &soa.serial)?;
        m.serialize_entry("refresh", &soa.refresh)?;
        m.serialize_entry("retry", &soa.retry)?;
        m.serialize_entry("expire", &soa.expire)?;
        m.serialize_entry("minimum", &soa.minimum)?;
        m.end()
    }
}

struct EveSrv<'a>(&'a DnsSrv);

impl Serialize for EveSrv<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("priority", &self.0.priority)?;
        m.serialize_entry("weight", &self.0.weight)?;
        m.serialize_entry("port", &self.0.port)?;
        m.serialize_entry("name", &EveName(&self.0.target.value))?;
        m.end()
    }
}

struct EveSshfp<'a>(&'a DnsSshfp);

impl Serialize for EveSshfp<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("fingerprint", &hex(&self.0.fingerprint, ":"))?;
        m.serialize_entry("algo", &self.0.algo)?;
        m.serialize_entry("type", &self.0.fp_type)?;
        m.end()
    }
}

struct EveOpt<'a>(&'a DnsOptEntry);

impl Serialize for EveOpt<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("code", &self.0.code)?;
        m.serialize_entry("data", &hex(&self.0.data, ""))?;
        m.end()
    }
}

/// One entry of `answers`/`authorities`/`additionals`; `txt` picks the TXT string.
struct EveRecord<'a> {
    rec: &'a DnsRecord,
    txt: usize,
    rdata_hex: bool,
}

impl Serialize for EveRecord<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.rec;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("rrname", &EveName(&r.name.value))?;
        if r.name.truncated {
            m.serialize_entry("rrname_truncated", &true)?;
        }
        m.serialize_entry("rrtype", &rrtype_name(r.rrtype))?;
        m.serialize_entry("ttl", &r.ttl)?;
        match &r.rdata {
            DnsRdata::Addr(a) => m.serialize_entry("rdata", &print_addr(a))?,
            DnsRdata::Name(n) => {
                m.serialize_entry("rdata", &EveName(&n.value))?;
                if n.truncated {
                    m.serialize_entry("rdata_truncated", &true)?;
                }
            }
            DnsRdata::Txt(t) => {
                if let Some(t) = t.get(self.txt) {
                    m.serialize_entry("rdata", &EveName(t))?;
                }
            }
            DnsRdata::Null(b) => m.serialize_entry("rdata", &EveName(b))?,
            DnsRdata::Soa(soa) => m.serialize_entry("soa", &EveSoa(soa))?,
            DnsRdata::Srv(srv) => m.serialize_entry("srv", &EveSrv(srv))?,
            DnsRdata::Sshfp(f) => m.serialize_entry("sshfp", &EveSshfp(f))?,
            DnsRdata::Opt(opts) => {
                let v: Vec<EveOpt> = opts.iter().map(EveOpt).collect();
                m.serialize_entry("opt", &v)?;
            }
            DnsRdata::Other(b) => {
                if self.rdata_hex {
                    m.serialize_entry("rdata", &hex(b, ""))?;
                }
            }
        }
        m.end()
    }
}

/// A section in detailed form: a TXT record gives one entry per string (none when empty); an
/// OPT record without options is left out of `additionals` only (`skip_empty_opt`).
struct EveSection<'a> {
    recs: &'a [DnsRecord],
    rdata_hex: bool,
    skip_empty_opt: bool,
}

impl EveSection<'_> {
    fn entries(&self) -> impl Iterator<Item = EveRecord<'_>> {
        let hex = self.rdata_hex;
        let skip = self.skip_empty_opt;
        self.recs
            .iter()
            .filter(move |r| !(skip && matches!(&r.rdata, DnsRdata::Opt(o) if o.is_empty())))
            .flat_map(move |rec| {
                let n = match &rec.rdata {
                    DnsRdata::Txt(t) => t.len(),
                    _ => 1,
                };
                (0..n).map(move |txt| EveRecord {
                    rec,
                    txt,
                    rdata_hex: hex,
                })
            })
    }
}

impl Serialize for EveSection<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for e in self.entries() {
            seq.serialize_element(&e)?;
        }
        seq.end()
    }
}

/// `grouped`: per rrtype (in order of first appearance), the values of the answers.
struct EveGrouped<'a>(&'a [DnsRecord]);

/// The records of one type, as the items of its `grouped` list.
struct GroupOf<'a> {
    records: &'a [DnsRecord],
    rrtype: u16,
}

impl Serialize for GroupOf<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for r in self.records.iter().filter(|r| r.rrtype == self.rrtype) {
            match &r.rdata {
                DnsRdata::Addr(a) => seq.serialize_element(&print_addr(a))?,
                DnsRdata::Name(n) => seq.serialize_element(&EveName(&n.value))?,
                DnsRdata::Txt(t) => {
                    for t in t {
                        seq.serialize_element(&EveName(t))?;
                    }
                }
                DnsRdata::Null(b) => seq.serialize_element(&EveName(b))?,
                DnsRdata::Soa(v) => seq.serialize_element(&EveSoa(v))?,
                DnsRdata::Srv(v) => seq.serialize_element(&EveSrv(v))?,
                DnsRdata::Sshfp(v) => seq.serialize_element(&EveSshfp(v))?,
                DnsRdata::Opt(_) | DnsRdata::Other(_) => {}
            }
        }
        seq.end()
    }
}

fn grouped(rdata: &DnsRdata) -> bool {
    !matches!(rdata, DnsRdata::Opt(_) | DnsRdata::Other(_))
}

impl Serialize for EveGrouped<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Types in order of first appearance; answers rarely have more than a few.
        let mut types: Vec<u16> = Vec::new();
        for r in self.0.iter().filter(|r| grouped(&r.rdata)) {
            if !types.contains(&r.rrtype) {
                types.push(r.rrtype);
            }
        }
        let mut m = s.serialize_map(Some(types.len()))?;
        for &t in &types {
            m.serialize_entry(
                &rrtype_name(t),
                &GroupOf {
                    records: self.0,
                    rrtype: t,
                },
            )?;
        }
        m.end()
    }
}

impl Serialize for DnsMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.flags;
        let fmt = &self.format;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("version", &3)?;
        m.serialize_entry(
            "type",
            if self.is_response {
                "response"
            } else {
                "request"
            },
        )?;
        m.serialize_entry("tx_id", &self.tx_id)?;
        m.serialize_entry("id", &self.id)?;
        let mut flags = crate::text::InlineStr::<4>::new();
        flags.push_hex(u64::from(f));
        m.serialize_entry("flags", &flags)?;
        for (bit, key) in [
            (QR, "qr"),
            (AA, "aa"),
            (TC, "tc"),
            (RD, "rd"),
            (RA, "ra"),
            (Z, "z"),
        ] {
            if f & bit != 0 {
                m.serialize_entry(key, &true)?;
            }
        }
        m.serialize_entry("opcode", &self.opcode())?;
        m.serialize_entry("rcode", &rcode_name(f))?;
        if !self.queries.is_empty() {
            m.serialize_entry("queries", &EveQueries(&self.queries, fmt.types))?;
        }
        if !self.answers.is_empty() {
            if fmt.detailed {
                let sec = EveSection {
                    recs: &self.answers,
                    rdata_hex: fmt.rdata_hex,
                    skip_empty_opt: false,
                };
                m.serialize_entry("answers", &sec)?;
            }
            if fmt.grouped {
                m.serialize_entry("grouped", &EveGrouped(&self.answers))?;
            }
        }
        if !self.authorities.is_empty() {
            let sec = EveSection {
                recs: &self.authorities,
                rdata_hex: fmt.rdata_hex,
                skip_empty_opt: false,
            };
            m.serialize_entry("authorities", &sec)?;
        }
        let adds = EveSection {
            recs: &self.additionals,
            rdata_hex: fmt.rdata_hex,
            skip_empty_opt: true,
        };
        // Suricata opens `additionals` only once an entry survives the empty-OPT filter.
        if adds
            .recs
            .iter()
            .any(|r| !matches!(&r.rdata, DnsRdata::Opt(o) if o.is_empty()))
        {
            m.serialize_entry("additionals", &adds)?;
        }
        m.end()
    }
}

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;
