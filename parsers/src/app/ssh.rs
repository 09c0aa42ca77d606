//! SSH application-layer parser: identification banners (RFC 4253 §4.2), the cleartext binary
//! packets before encryption (§6), SSH_MSG_KEXINIT (§7.1) for HASSH fingerprints and
//! SSH_MSG_NEWKEYS, after which a direction is encrypted and no longer parsed.
//!
//! Written by hand: no maintained SSH parsing crate exists (rusticata's `ssh-parser` is
//! unmaintained), and the part needed here is small. Behaviour follows Suricata 8's SSH parser
//! where it matters for output and detection (field splitting, event names, the 256-byte banner
//! limit, the 65535-byte KEXINIT limit), with these deliberate differences:
//! - a server may send text lines before its banner (RFC 4253 §4.2); they are skipped, bounded.
//! - an error stops only the direction it happened in, not the whole flow, so what the other
//!   side says is still recorded regardless of which packet was processed first.
//! - over-long banners are always cut at 256 bytes, however the bytes were split, so the record
//!   does not depend on segmentation.
//! - only the first KEXINIT of a direction is fingerprinted.

use md5::{Digest, Md5};
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::{eve_bytes_to_string, AppOutput, AppParser, AppProto, AppRecord, Direction, Probe};

/// The protocol events this parser raises (Suricata's names), the ones a rule can name with
/// `app-layer-event:ssh.<name in lower case>`.
pub const EVENTS: &[&str] = &[
    "INVALID_BANNER",
    "LONG_BANNER",
    "INVALID_RECORD",
    "LONG_KEX_RECORD",
];

/// Suricata's banner limit (`SSH_MAX_BANNER_LEN`): a line this long or longer is a LONG_BANNER and
/// only its first this-many bytes are parsed. RFC 4253 allows 255 bytes including CR LF.
pub const MAX_BANNER_LEN: usize = 256;
/// Suricata's limit on a KEXINIT body that is buffered for HASSH (`SSH_MAX_REASSEMBLED_RECORD_LEN`).
pub const MAX_KEXINIT_LEN: u32 = 65535;
/// Text lines a server may send before its banner. OpenSSH's client gives up after 1024.
pub const MAX_PRE_BANNER_LINES: u32 = 1024;
/// Bytes the probe scans through server pre-banner lines before deciding this is not SSH.
pub const PROBE_MAX_PRE_BANNER: usize = 4096;

const BANNER_PREFIX: &[u8; 4] = b"SSH-";
const RECORD_HEADER_LEN: usize = 6;
const MSG_KEXINIT: u8 = 20;
const MSG_NEWKEYS: u8 = 21;

/// Recognises an SSH direction from its first bytes. The client must open with `SSH-`; the
/// server may precede it with text lines. Case-insensitive like Suricata's detection pattern, so
/// a lower-case banner is still classified as SSH and then flagged INVALID_BANNER by the parser.
pub fn probe(dir: Direction, data: &[u8]) -> Probe {
    match dir {
        Direction::ToServer => probe_prefix(data),
        Direction::ToClient => {
            let mut rest = data;
            let mut scanned = 0usize;
            loop {
                match probe_prefix(rest) {
                    Probe::NoMatch => {}
                    other => return other,
                }
                // Not the banner: it must be a whole text line to be skipped.
                let Some(eol) = memchr::memchr(b'\n', rest) else {
                    return if is_text(rest) && scanned + rest.len() < PROBE_MAX_PRE_BANNER {
                        Probe::NeedMore
                    } else {
                        Probe::NoMatch
                    };
                };
                let (line, tail) = rest.split_at(eol);
                if !is_text(line) {
                    return Probe::NoMatch;
                }
                scanned += eol + 1;
                if scanned >= PROBE_MAX_PRE_BANNER {
                    return Probe::NoMatch;
                }
                rest = tail.get(1..).unwrap_or_default();
            }
        }
    }
}

/// Whether `data` starts with `SSH-` (any case), could still, or cannot.
fn probe_prefix(data: &[u8]) -> Probe {
    let n = data.len().min(BANNER_PREFIX.len());
    let (Some(head), Some(want)) = (data.get(..n), BANNER_PREFIX.get(..n)) else {
        return Probe::NoMatch;
    };
    if !head.eq_ignore_ascii_case(want) {
        Probe::NoMatch
    } else if n < BANNER_PREFIX.len() {
        Probe::NeedMore
    } else {
        Probe::Match
    }
}

/// Pre-banner lines are UTF-8 text: refuse control bytes other than tab and CR, so binary
/// protocols are not held in NeedMore.
fn is_text(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b >= 0x20 || b == b'\t' || b == b'\r')
}

/// Parser settings; `Default` is Suricata 8's default configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SshConfig {
    /// Compute HASSH fingerprints (`app-layer.protocols.ssh.hassh`). Off by default in Suricata 8,
    /// which turns it on when a loaded rule uses `ssh.hassh*`; the caller does the same.
    pub hassh: bool,
}

/// A HASSH fingerprint: the MD5 (lower-case hex) of the algorithm string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hassh {
    pub hash: String,
    /// `kex;enc;mac;comp` for the sender's direction, as sent (not necessarily UTF-8).
    pub string: Vec<u8>,
}

/// What one side announced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SshEndpoint {
    pub proto_version: Vec<u8>,
    /// Empty when the banner had none (`SSH-2.0-`).
    pub software_version: Vec<u8>,
    pub hassh: Option<Hassh>,
}

impl Serialize for SshEndpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("proto_version", &eve_bytes_to_string(&self.proto_version))?;
        if !self.software_version.is_empty() {
            m.serialize_entry(
                "software_version",
                &eve_bytes_to_string(&self.software_version),
            )?;
        }
        if let Some(h) = &self.hassh {
            m.serialize_entry("hassh", &HasshJson(h))?;
        }
        m.end()
    }
}

struct HasshJson<'a>(&'a Hassh);

impl Serialize for HasshJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("hash", &self.0.hash)?;
        m.serialize_entry("string", &eve_bytes_to_string(&self.0.string))?;
        m.end()
    }
}

/// One SSH session as seen before encryption: the EVE `ssh` object and the buffers the
/// `ssh.proto`, `ssh.software` and `ssh.hassh*` keywords inspect. A side is present once its
/// banner was parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SshHandshake {
    pub client: Option<SshEndpoint>,
    pub server: Option<SshEndpoint>,
}

impl SshHandshake {
    pub fn client_proto(&self) -> Option<&[u8]> {
        self.client.as_ref().map(|e| e.proto_version.as_slice())
    }
    pub fn client_software(&self) -> Option<&[u8]> {
        self.client
            .as_ref()
            .map(|e| e.software_version.as_slice())
            .filter(|s| !s.is_empty())
    }
    pub fn server_proto(&self) -> Option<&[u8]> {
        self.server.as_ref().map(|e| e.proto_version.as_slice())
    }
    pub fn server_software(&self) -> Option<&[u8]> {
        self.server
            .as_ref()
            .map(|e| e.software_version.as_slice())
            .filter(|s| !s.is_empty())
    }
    /// Client HASSH (MD5 hex).
    pub fn hassh(&self) -> Option<&str> {
        self.client
            .as_ref()?
            .hassh
            .as_ref()
            .map(|h| h.hash.as_str())
    }
    pub fn hassh_string(&self) -> Option<&[u8]> {
        self.client
            .as_ref()?
            .hassh
            .as_ref()
            .map(|h| h.string.as_slice())
    }
    /// Server HASSH (MD5 hex).
    pub fn hassh_server(&self) -> Option<&str> {
        self.server
            .as_ref()?
            .hassh
            .as_ref()
            .map(|h| h.hash.as_str())
    }
    pub fn hassh_server_string(&self) -> Option<&[u8]> {
        self.server
            .as_ref()?
            .hassh
            .as_ref()
            .map(|h| h.string.as_slice())
    }
}

/// Suricata's EVE `ssh` object: `client` / `server` with `proto_version`, `software_version` and
/// `hassh {hash, string}`; absent parts are omitted.
impl Serialize for SshHandshake {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if let Some(c) = &self.client {
            m.serialize_entry("client", c)?;
        }
        if let Some(sv) = &self.server {
            m.serialize_entry("server", sv)?;
        }
        m.end()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Collecting a line: the banner, or (server) a line before it.
    Line,
    /// The current line was too long; discard up to its end, then go to `then`.
    SkipToEol { then_records: bool },
    /// Binary packets in the clear.
    Records,
    /// After NEWKEYS: encrypted, ignored.
    Encrypted,
    /// Error, gap or end of stream: nothing more is parsed.
    Stopped,
}

#[derive(Debug)]
struct Side {
    dir: Direction,
    phase: Phase,
    /// The line being collected, at most MAX_BANNER_LEN bytes, terminator excluded.
    line: Vec<u8>,
    /// The last line ended in CR: an LF right after it belongs to that line.
    skip_lf: bool,
    pre_banner_lines: u32,
    /// Set once a banner parsed.
    endpoint: Option<SshEndpoint>,
    hdr: [u8; RECORD_HEADER_LEN],
    hdr_len: usize,
    /// Body bytes of the current packet still to come.
    body_left: u32,
    /// The current packet is the KEXINIT being buffered.
    collecting_kex: bool,
    kex: Vec<u8>,
    /// The first KEXINIT was seen (fingerprinted or not); later ones are ignored.
    kex_seen: bool,
}

impl Side {
    fn new(dir: Direction) -> Self {
        Side {
            dir,
            phase: Phase::Line,
            line: Vec::new(),
            skip_lf: false,
            pre_banner_lines: 0,
            endpoint: None,
            hdr: [0; RECORD_HEADER_LEN],
            hdr_len: 0,
            body_left: 0,
            collecting_kex: false,
            kex: Vec::new(),
            kex_seen: false,
        }
    }

    fn terminal(&self) -> bool {
        matches!(self.phase, Phase::Encrypted | Phase::Stopped)
    }

    fn banner_done(&self) -> bool {
        self.endpoint.is_some()
    }

    fn event(&self, out: &mut AppOutput, name: &'static str) {
        out.event(AppProto::Ssh, name, self.dir, Some(0));
    }

    fn stop(&mut self) {
        self.phase = Phase::Stopped;
        // Free buffers: nothing more is parsed.
        self.line = Vec::new();
        self.kex = Vec::new();
        self.collecting_kex = false;
    }

    fn feed(&mut self, mut data: &[u8], cfg: &SshConfig, out: &mut AppOutput) {
        while !data.is_empty() {
            if self.skip_lf {
                self.skip_lf = false;
                if data.first() == Some(&b'\n') {
                    data = data.get(1..).unwrap_or_default();
                    continue;
                }
            }
            data = match self.phase {
                Phase::Line => self.feed_line(data, out),
                Phase::SkipToEol { then_records } => match memchr::memchr2(b'\n', b'\r', data) {
                    None => &[],
                    Some(i) => {
                        self.skip_lf = data.get(i) == Some(&b'\r');
                        self.phase = if then_records {
                            Phase::Records
                        } else {
                            Phase::Line
                        };
                        data.get(i + 1..).unwrap_or_default()
                    }
                },
                Phase::Records => self.feed_records(data, cfg, out),
                Phase::Encrypted | Phase::Stopped => &[],
            };
        }
    }

    /// Collects line bytes; a line ends at LF, CR LF or a lone CR (as Suricata splits them).
    fn feed_line<'a>(&mut self, data: &'a [u8], out: &mut AppOutput) -> &'a [u8] {
        let eol = memchr::memchr2(b'\n', b'\r', data);
        let avail = eol.unwrap_or(data.len());
        let room = MAX_BANNER_LEN.saturating_sub(self.line.len());
        let take = avail.min(room);
        self.line
            .extend_from_slice(data.get(..take).unwrap_or_default());
        if self.line.len() >= MAX_BANNER_LEN {
            // Too long, whether or not its end is in sight: parse the first MAX_BANNER_LEN bytes
            // and discard the rest of the line (Suricata's long-banner handling).
            self.end_line(true, out);
            if let Phase::Line | Phase::Records = self.phase {
                let then_records = self.phase == Phase::Records;
                self.phase = Phase::SkipToEol { then_records };
            }
            return data.get(take..).unwrap_or_default();
        }
        match eol {
            None => &[],
            Some(i) => {
                self.skip_lf = data.get(i) == Some(&b'\r');
                self.end_line(false, out);
                data.get(i + 1..).unwrap_or_default()
            }
        }
    }

    /// A line is complete (or cut at the limit when `long`).
    fn end_line(&mut self, long: bool, out: &mut AppOutput) {
        let line = std::mem::take(&mut self.line);
        let looks_like_banner = line
            .get(..BANNER_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(BANNER_PREFIX));
        if self.dir == Direction::ToClient && !looks_like_banner {
            // RFC 4253 §4.2: the server may send other lines first.
            self.pre_banner_lines += 1;
            if self.pre_banner_lines > MAX_PRE_BANNER_LINES {
                self.event(out, "INVALID_BANNER");
                out.parser_error();
                self.stop();
            }
            // Reuse the allocation for the next line.
            self.line = line;
            self.line.clear();
            return;
        }
        match parse_banner(&line) {
            Some((proto, software)) => {
                self.endpoint = Some(SshEndpoint {
                    proto_version: proto.to_vec(),
                    software_version: software.to_vec(),
                    hassh: None,
                });
                if long {
                    self.event(out, "LONG_BANNER");
                }
                self.phase = Phase::Records;
                self.line = Vec::new();
            }
            None => {
                self.event(out, "INVALID_BANNER");
                out.parser_error();
                self.stop();
            }
        }
    }

    fn feed_records<'a>(
        &mut self,
        data: &'a [u8],
        cfg: &SshConfig,
        out: &mut AppOutput,
    ) -> &'a [u8] {
        if self.hdr_len < RECORD_HEADER_LEN {
            let n = (RECORD_HEADER_LEN - self.hdr_len).min(data.len());
            let (src, rest) = data.split_at(n);
            if let Some(dst) = self.hdr.get_mut(self.hdr_len..self.hdr_len + n) {
                dst.copy_from_slice(src);
            }
            self.hdr_len += n;
            if self.hdr_len < RECORD_HEADER_LEN {
                return rest;
            }
            let [a, b, c, d, _padding, msg] = self.hdr;
            let pkt_len = u32::from_be_bytes([a, b, c, d]);
            // packet_length covers padding_length and the message code at least.
            if pkt_len < 2 {
                self.event(out, "INVALID_RECORD");
                out.parser_error();
                self.stop();
                return &[];
            }
            self.body_left = pkt_len - 2;
            match msg {
                MSG_NEWKEYS => {
                    // Everything after this message is encrypted.
                    self.phase = Phase::Encrypted;
                    return &[];
                }
                MSG_KEXINIT if cfg.hassh && !self.kex_seen => {
                    self.kex_seen = true;
                    if self.body_left >= MAX_KEXINIT_LEN {
                        self.event(out, "LONG_KEX_RECORD");
                    } else {
                        self.collecting_kex = true;
                    }
                }
                _ => {}
            }
            if self.body_left == 0 {
                self.end_packet();
            }
            return rest;
        }
        // Packet body: skipped by length, copied only for the KEXINIT being fingerprinted.
        let n = usize::try_from(self.body_left)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let (body, rest) = data.split_at(n);
        if self.collecting_kex {
            self.kex.extend_from_slice(body);
        }
        // n <= body_left, which fits in u32.
        self.body_left -= u32::try_from(n).unwrap_or(self.body_left);
        if self.body_left == 0 {
            self.end_packet();
        }
        rest
    }

    fn end_packet(&mut self) {
        self.hdr_len = 0;
        if self.collecting_kex {
            self.collecting_kex = false;
            let body = std::mem::take(&mut self.kex);
            if let (Some(ep), Some(h)) =
                (self.endpoint.as_mut(), hassh_from_kexinit(&body, self.dir))
            {
                ep.hassh = Some(h);
            }
        }
    }
}

/// Splits `SSH-protoversion-softwareversion[ SP comments]` (terminator already removed) the way
/// Suricata does: protoversion is everything up to the next `-` (at least one byte), the software
/// version runs to the first space (or CR/LF, or the end of a cut line).
fn parse_banner(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = line.strip_prefix(BANNER_PREFIX)?;
    let dash = memchr::memchr(b'-', rest)?;
    if dash == 0 {
        return None;
    }
    let proto = rest.get(..dash)?;
    let after = rest.get(dash + 1..)?;
    let end = after
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .unwrap_or(after.len());
    Some((proto, after.get(..end)?))
}

/// Reads one SSH `string` (uint32 length + bytes).
fn take_string<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len_bytes: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    let len = usize::try_from(u32::from_be_bytes(len_bytes)).ok()?;
    let end = len.checked_add(4)?;
    let s = buf.get(4..end)?;
    *buf = buf.get(end..)?;
    Some(s)
}

/// HASSH of a KEXINIT body (after the message code, padding included): `kex;enc;mac;comp` of
/// the sender's own direction (client-to-server for the client, server-to-client for the
/// server). None when the message is truncated or malformed, as in Suricata.
fn hassh_from_kexinit(body: &[u8], sender: Direction) -> Option<Hassh> {
    let mut b = body.get(16..)?; // cookie
    let mut lists: [&[u8]; 10] = [&[]; 10];
    for l in lists.iter_mut() {
        *l = take_string(&mut b)?;
    }
    // first_kex_packet_follows and reserved must be there too.
    if b.len() < 5 {
        return None;
    }
    let [kex, _hostkey, enc_cs, enc_sc, mac_cs, mac_sc, comp_cs, comp_sc, _lang_cs, _lang_sc] =
        lists;
    let parts = match sender {
        Direction::ToServer => [kex, enc_cs, mac_cs, comp_cs],
        Direction::ToClient => [kex, enc_sc, mac_sc, comp_sc],
    };
    let mut string = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            string.push(b';');
        }
        string.extend_from_slice(p);
    }
    let digest = Md5::digest(&string);
    let mut hash = String::with_capacity(32);
    for byte in digest {
        use std::fmt::Write;
        let _ = write!(hash, "{byte:02x}");
    }
    Some(Hassh { hash, string })
}

/// SSH state of one flow.
#[derive(Debug)]
pub struct SshParser {
    cfg: SshConfig,
    client: Side,
    server: Side,
    emitted: bool,
}

impl SshParser {
    pub fn new(cfg: SshConfig) -> Self {
        SshParser {
            cfg,
            client: Side::new(Direction::ToServer),
            server: Side::new(Direction::ToClient),
            emitted: false,
        }
    }

    fn side(&mut self, dir: Direction) -> &mut Side {
        match dir {
            Direction::ToServer => &mut self.client,
            Direction::ToClient => &mut self.server,
        }
    }

    /// Emits the record once it can no longer change. Without HASSH that is when both banners
    /// are in (Suricata logs then too); with it, when both sides are encrypted or stopped.
    fn maybe_emit(&mut self, out: &mut AppOutput) {
        if self.emitted {
            return;
        }
        let ready = (self.client.terminal() && self.server.terminal())
            || (!self.cfg.hassh && self.client.banner_done() && self.server.banner_done());
        if ready {
            self.emit(out);
        }
    }

    fn emit(&mut self, out: &mut AppOutput) {
        if self.emitted || (self.client.endpoint.is_none() && self.server.endpoint.is_none()) {
            return;
        }
        self.emitted = true;
        out.records.push(AppRecord::Ssh(Box::new(SshHandshake {
            client: self.client.endpoint.clone(),
            server: self.server.endpoint.clone(),
        })));
    }
}

impl AppParser for SshParser {
    fn parse(&mut self, dir: Direction, data: &[u8], _ts_ns: u64, out: &mut AppOutput) {
        let cfg = self.cfg;
        self.side(dir).feed(data, &cfg, out);
        self.maybe_emit(out);
    }

    fn gap(&mut self, dir: Direction, _len: u64, out: &mut AppOutput) {
        // No way to find the next packet boundary in SSH: give up on this direction.
        let side = self.side(dir);
        if side.phase != Phase::Encrypted {
            side.stop();
        }
        self.maybe_emit(out);
    }

    fn end_of_stream(&mut self, dir: Direction, _ts_ns: u64, out: &mut AppOutput) {
        // An unterminated banner line is dropped, as Suricata never completes it either.
        let side = self.side(dir);
        if side.phase != Phase::Encrypted {
            side.stop();
        }
        self.maybe_emit(out);
    }

    fn finish(&mut self, _ts_ns: u64, out: &mut AppOutput) {
        self.emit(out);
    }

    fn is_done(&self) -> bool {
        self.client.terminal() && self.server.terminal()
    }
}

#[cfg(test)]
#[path = "ssh_tests.rs"]
mod tests;
