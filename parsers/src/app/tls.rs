//! TLS/SSL handshake parser: records, ClientHello/ServerHello, certificates, JA3/JA3S/JA4, and
//! the EVE `tls` object Suricata 8 writes.
//!
//! Each direction is a record stream. Handshake records are reassembled into handshake messages
//! (which may span records) until that direction switches to encrypted traffic; after that only
//! the 5-byte record headers are read and bodies are counted, never copied. One record per
//! session is emitted once the handshake is as complete as a passive observer can see it.
//!
//! tls-parser decodes record headers, hellos, their extensions and Certificate messages;
//! x509-parser the certificates. Hand-written, because tls-parser cannot do them:
//! - record framing across TCP segments: tls-parser reads whole records from one buffer, so it
//!   would need every record buffered; here a header is gathered (5 bytes) and bodies stream
//!   through, encrypted ones counted without a copy;
//! - handshake messages spanning records: tls-parser only parses messages within one record;
//! - the SSLv2-compatible ClientHello, which tls-parser does not parse;
//! - `probe`, which must judge partial first bytes (need more / match on a header prefix).
//!
//! Where tls-parser reads malformed input more loosely than the output needs (an optional part
//! it drops, a list it cuts short), its result is checked against the lengths it consumed; each
//! such place says so. It is stricter in two ways, kept: a hello with a session id over 32 bytes
//! or an odd-length cipher-suite list is malformed.

use super::{eve_bytes_to_string, AppOutput, AppParser, AppProto, AppRecord, Direction, Probe};
use md5::{Digest as _, Md5};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use sha1::Sha1;
use sha2::Sha256;
use std::fmt::Write as _;
use tls_parser::nom::multi::length_data;
use tls_parser::nom::number::streaming::{be_u16, be_u8};
use tls_parser::{
    parse_tls_extension_alpn_content, parse_tls_extension_ec_point_formats_content,
    parse_tls_extension_signature_algorithms_content, parse_tls_extension_sni_content,
    parse_tls_extension_unknown, parse_tls_handshake_client_hello,
    parse_tls_handshake_msg_certificate, parse_tls_handshake_msg_server_hello,
    parse_tls_record_header, IResult, SNIType, TlsExtension, TlsExtensionType, TlsHandshakeType,
    TlsMessageHandshake, TlsRecordType,
};

/// The protocol events this parser raises (Suricata's names), the ones a rule can name with
/// `app-layer-event:tls.<name in lower case>`.
pub const EVENTS: &[&str] = &[
    "INVALID_SSLV2_HEADER",
    "INVALID_SSL_RECORD",
    "INVALID_RECORD_TYPE",
    "INVALID_RECORD_VERSION",
    "HANDSHAKE_INVALID_LENGTH",
    "INVALID_HANDSHAKE_MESSAGE",
    "INVALID_SNI_TYPE",
    "INVALID_SNI_LENGTH",
    "MULTIPLE_SNI_EXTENSIONS",
    "CERTIFICATE_INVALID_LENGTH",
    "INVALID_CERTIFICATE",
    "HEARTBEAT_MESSAGE",
];

/// Largest record body accepted: 2^14 plaintext plus the 2048 bytes of expansion TLS allows
/// for ciphertext.
const MAX_RECORD_LEN: usize = 16384 + 2048;
/// Largest handshake message reassembled; Certificate chains are the big ones.
const MAX_HS_MSG_LEN: usize = 64 * 1024;
/// Certificates of a chain kept as DER (the whole chain is already bounded by the message cap).
const MAX_CHAIN_CERTS: usize = 16;
/// Subject alternative names kept from the first certificate.
const MAX_SANS: usize = 64;
/// List lengths kept from a hello (ciphers, extensions, ...): bounded by the message anyway,
/// but a 64 KiB hello could otherwise list 32k values.
const MAX_LIST: usize = 512;
/// Suricata rejects longer SNI host names.
const MAX_SNI_LEN: usize = 255;

/// `random` of a ServerHello that is really a HelloRetryRequest (RFC 8446 4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

const CT_CCS: u8 = TlsRecordType::ChangeCipherSpec.0;
const CT_HANDSHAKE: u8 = TlsRecordType::Handshake.0;
const CT_HEARTBEAT: u8 = TlsRecordType::Heartbeat.0;

const HS_CLIENT_HELLO: u8 = TlsHandshakeType::ClientHello.0;
const HS_SERVER_HELLO: u8 = TlsHandshakeType::ServerHello.0;

const EXT_SNI: u16 = TlsExtensionType::ServerName.0;
const EXT_GROUPS: u16 = TlsExtensionType::SupportedGroups.0;
const EXT_EC_POINT_FORMATS: u16 = TlsExtensionType::EcPointFormats.0;
const EXT_SIG_ALGS: u16 = TlsExtensionType::SignatureAlgorithms.0;
const EXT_ALPN: u16 = TlsExtensionType::ApplicationLayerProtocolNegotiation.0;
const EXT_SUPPORTED_VERSIONS: u16 = TlsExtensionType::SupportedVersions.0;

/// GREASE values (RFC 8701): 0x?a?a with both bytes equal.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// Version name as Suricata's `SSLVersionToString` writes it; unknown values as decimal.
pub fn version_string(v: u16) -> String {
    let s = match v {
        0x0000 => "UNDETERMINED",
        0x0200 => "SSLv2",
        0x0300 => "SSLv3",
        0x0301 => "TLSv1",
        0x0302 => "TLS 1.1",
        0x0303 => "TLS 1.2",
        0x0304 => "TLS 1.3",
        0x7f01 => "TLS 1.3 draft-<16",
        0x7f10..=0x7f1c => return format!("TLS 1.3 draft-{}", v & 0xff),
        0xfb14 | 0xfb15 | 0xfb16 | 0xfb17 | 0xfb1a => {
            return format!("TLS 1.3 draft-{}-fb", v & 0xff)
        }
        _ => return v.to_string(),
    };
    s.to_owned()
}

/// Whether a version denotes TLS 1.3 (final or a draft).
fn is_tls13(v: u16) -> bool {
    v == 0x0304 || v == 0x7f01 || (0x7f10..=0x7f1c).contains(&v) || (v & 0xff00) == 0xfb00
}

/// The fields of the EVE `tls` object, by Suricata 8's `eve-log.types.tls.custom` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsFields(u32);

impl TlsFields {
    pub const VERSION: TlsFields = TlsFields(1 << 0);
    pub const SUBJECT: TlsFields = TlsFields(1 << 1);
    pub const ISSUER: TlsFields = TlsFields(1 << 2);
    pub const SERIAL: TlsFields = TlsFields(1 << 3);
    pub const FINGERPRINT: TlsFields = TlsFields(1 << 4);
    pub const NOT_BEFORE: TlsFields = TlsFields(1 << 5);
    pub const NOT_AFTER: TlsFields = TlsFields(1 << 6);
    pub const SNI: TlsFields = TlsFields(1 << 7);
    pub const CERTIFICATE: TlsFields = TlsFields(1 << 8);
    pub const CHAIN: TlsFields = TlsFields(1 << 9);
    pub const SESSION_RESUMED: TlsFields = TlsFields(1 << 10);
    pub const JA3: TlsFields = TlsFields(1 << 11);
    pub const JA3S: TlsFields = TlsFields(1 << 12);
    /// The client certificate's fields (`client` object).
    pub const CLIENT: TlsFields = TlsFields(1 << 13);
    pub const CLIENT_CERTIFICATE: TlsFields = TlsFields(1 << 14);
    pub const CLIENT_CHAIN: TlsFields = TlsFields(1 << 15);
    pub const JA4: TlsFields = TlsFields(1 << 16);
    pub const SUBJECTALTNAME: TlsFields = TlsFields(1 << 17);
    pub const CLIENT_ALPNS: TlsFields = TlsFields(1 << 18);
    pub const SERVER_ALPNS: TlsFields = TlsFields(1 << 19);
    pub const CLIENT_HANDSHAKE: TlsFields = TlsFields(1 << 20);
    pub const SERVER_HANDSHAKE: TlsFields = TlsFields(1 << 21);

    pub const NONE: TlsFields = TlsFields(0);
    /// Without `extended` or `custom`.
    pub const BASIC: TlsFields =
        TlsFields(Self::SUBJECT.0 | Self::ISSUER.0 | Self::SUBJECTALTNAME.0);
    /// `extended: yes`.
    pub const EXTENDED: TlsFields = TlsFields(
        Self::BASIC.0
            | Self::VERSION.0
            | Self::SERIAL.0
            | Self::FINGERPRINT.0
            | Self::NOT_BEFORE.0
            | Self::NOT_AFTER.0
            | Self::JA3.0
            | Self::JA3S.0
            | Self::JA4.0
            | Self::CLIENT.0
            | Self::CLIENT_ALPNS.0
            | Self::SERVER_ALPNS.0
            | Self::SNI.0,
    );

    /// `custom` names, as Suricata spells them.
    pub const NAMES: [(&'static str, TlsFields); 22] = [
        ("version", Self::VERSION),
        ("subject", Self::SUBJECT),
        ("issuer", Self::ISSUER),
        ("serial", Self::SERIAL),
        ("fingerprint", Self::FINGERPRINT),
        ("not_before", Self::NOT_BEFORE),
        ("not_after", Self::NOT_AFTER),
        ("sni", Self::SNI),
        ("certificate", Self::CERTIFICATE),
        ("chain", Self::CHAIN),
        ("session_resumed", Self::SESSION_RESUMED),
        ("ja3", Self::JA3),
        ("ja3s", Self::JA3S),
        ("client", Self::CLIENT),
        ("client_certificate", Self::CLIENT_CERTIFICATE),
        ("client_chain", Self::CLIENT_CHAIN),
        ("ja4", Self::JA4),
        ("subjectaltname", Self::SUBJECTALTNAME),
        ("client_alpns", Self::CLIENT_ALPNS),
        ("server_alpns", Self::SERVER_ALPNS),
        ("client_handshake", Self::CLIENT_HANDSHAKE),
        ("server_handshake", Self::SERVER_HANDSHAKE),
    ];

    /// The field a `custom` name means (any case, as Suricata); `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<TlsFields> {
        Self::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
            .map(|&(_, f)| f)
    }

    /// What Suricata logs for `extended` and `custom` (a list replaces the rest) and
    /// `session-resumption`; the client certificate or chain bring the `client` object along.
    pub fn from_settings<'a>(
        extended: bool,
        custom: Option<impl IntoIterator<Item = &'a str>>,
        session_resumption: bool,
    ) -> Result<TlsFields, String> {
        let mut f = if extended {
            Self::EXTENDED
        } else {
            Self::BASIC
        };
        if let Some(names) = custom {
            f = Self::NONE;
            for name in names {
                f = f.with(
                    Self::from_name(name).ok_or_else(|| format!("unknown tls field {name:?}"))?,
                );
            }
        }
        if session_resumption {
            f = f.with(Self::SESSION_RESUMED);
        }
        if f.has(Self::CLIENT_CERTIFICATE) || f.has(Self::CLIENT_CHAIN) {
            f = f.with(Self::CLIENT);
        }
        Ok(f)
    }

    pub const fn with(self, o: TlsFields) -> TlsFields {
        TlsFields(self.0 | o.0)
    }

    pub const fn has(self, o: TlsFields) -> bool {
        self.0 & o.0 == o.0
    }
}

/// What goes into the EVE `tls` object. The default is what Suricata 8 logs with its shipped
/// suricata.yaml (`eve-log.types.tls.extended: yes`, session resumption logged): JA4 on
/// (Suricata 8 computes it whenever built with JA4), JA3/JA3S off (`ja3-fingerprints: auto`
/// only turns them on when a rule needs them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsConfig {
    pub fields: TlsFields,
    /// JA3/JA3S are logged (where `fields` has them): Suricata's `ja3-fingerprints`.
    pub ja3: bool,
    /// JA4 is logged (where `fields` has it).
    pub ja4: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            fields: TlsFields::EXTENDED.with(TlsFields::SESSION_RESUMED),
            ja3: false,
            ja4: true,
        }
    }
}

/// The first certificate of a Certificate message, decoded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// "XX:XX:.." upper-case hex of the raw serial.
    pub serial: String,
    /// SHA-1 of the DER, lower-case colon hex.
    pub fingerprint: String,
    /// Seconds since the epoch (may be negative).
    pub not_before: i64,
    pub not_after: i64,
    pub sans: Vec<String>,
}

/// What one ClientHello said.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClientHello {
    /// legacy_version field.
    pub version: u16,
    /// supported_versions extension, as listed (GREASE included).
    pub supported_versions: Vec<u16>,
    pub session_id: Vec<u8>,
    pub ciphers: Vec<u16>,
    /// Extension types in wire order (GREASE included).
    pub extensions: Vec<u16>,
    pub sni: Option<Vec<u8>>,
    pub alpns: Vec<Vec<u8>>,
    pub groups: Vec<u16>,
    pub ec_point_formats: Vec<u8>,
    pub sig_algs: Vec<u16>,
    /// SSLv2-compatible ClientHello (no extensions).
    pub sslv2: bool,
}

/// What the ServerHello said.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerHello {
    pub legacy_version: u16,
    /// supported_versions extension (TLS 1.3), when present.
    pub selected_version: Option<u16>,
    pub session_id: Vec<u8>,
    pub cipher: u16,
    pub extensions: Vec<u16>,
    pub alpns: Vec<Vec<u8>>,
}

impl ServerHello {
    pub fn version(&self) -> u16 {
        self.selected_version.unwrap_or(self.legacy_version)
    }
}

/// One TLS session's handshake: the EVE `tls` record and the buffers signatures inspect.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsHandshake {
    pub client_hello: Option<ClientHello>,
    pub server_hello: Option<ServerHello>,
    /// Server certificate chain: the first one decoded, all kept as DER (bounded).
    pub server_cert: Option<CertInfo>,
    pub server_chain: Vec<Vec<u8>>,
    pub client_cert: Option<CertInfo>,
    pub client_chain: Vec<Vec<u8>>,
    pub session_resumed: bool,
    ja3: Option<(String, String)>,
    ja3s: Option<(String, String)>,
    ja4: Option<String>,
    log: TlsConfig,
}

impl TlsHandshake {
    pub fn sni(&self) -> Option<&[u8]> {
        self.client_hello.as_ref()?.sni.as_deref()
    }
    pub fn cert_subject(&self) -> Option<&str> {
        self.server_cert.as_ref().map(|c| c.subject.as_str())
    }
    pub fn cert_issuer(&self) -> Option<&str> {
        self.server_cert.as_ref().map(|c| c.issuer.as_str())
    }
    pub fn cert_serial(&self) -> Option<&str> {
        self.server_cert.as_ref().map(|c| c.serial.as_str())
    }
    pub fn cert_fingerprint(&self) -> Option<&str> {
        self.server_cert.as_ref().map(|c| c.fingerprint.as_str())
    }
    pub fn subject_alt_names(&self) -> &[String] {
        self.server_cert.as_ref().map_or(&[], |c| c.sans.as_slice())
    }
    /// Server certificates as DER, first one first.
    pub fn certificates(&self) -> &[Vec<u8>] {
        &self.server_chain
    }
    /// The session's version as Suricata reports it: the server's choice (supported_versions
    /// for TLS 1.3), else what the client offered; 0 when nothing was seen.
    pub fn version(&self) -> u16 {
        if let Some(sh) = &self.server_hello {
            return sh.version();
        }
        self.client_hello.as_ref().map_or(0, |ch| ch.version)
    }
    pub fn version_str(&self) -> String {
        version_string(self.version())
    }
    /// The client's version as `tls.version` sees it (Suricata's `client_connp.version`): the
    /// first known version supported_versions lists (GREASE and noise skipped), else
    /// legacy_version.
    pub fn client_version(&self) -> Option<u16> {
        let ch = self.client_hello.as_ref()?;
        let known =
            |v: u16| matches!(v, 0x0002 | 0x0300..=0x0304 | 0x7f00..=0x7fff | 0xfefc..=0xfeff);
        let listed = ch.supported_versions.iter().find(|v| known(**v));
        Some(listed.copied().unwrap_or(ch.version))
    }
    /// The server's version (`server_connp.version`): supported_versions' choice, else the
    /// ServerHello's legacy_version.
    pub fn server_version(&self) -> Option<u16> {
        self.server_hello.as_ref().map(ServerHello::version)
    }
    pub fn ja3_string(&self) -> Option<&str> {
        self.ja3.as_ref().map(|j| j.0.as_str())
    }
    pub fn ja3_hash(&self) -> Option<&str> {
        self.ja3.as_ref().map(|j| j.1.as_str())
    }
    pub fn ja3s_string(&self) -> Option<&str> {
        self.ja3s.as_ref().map(|j| j.0.as_str())
    }
    pub fn ja3s_hash(&self) -> Option<&str> {
        self.ja3s.as_ref().map(|j| j.1.as_str())
    }
    pub fn ja4(&self) -> Option<&str> {
        self.ja4.as_deref()
    }
    pub fn client_alpns(&self) -> &[Vec<u8>] {
        self.client_hello
            .as_ref()
            .map_or(&[], |c| c.alpns.as_slice())
    }
    pub fn server_alpns(&self) -> &[Vec<u8>] {
        self.server_hello
            .as_ref()
            .map_or(&[], |s| s.alpns.as_slice())
    }

    /// Computes the fingerprints from the hellos (called when the record is handed out).
    fn finalize(&mut self) {
        if let Some(ch) = &self.client_hello {
            if !ch.sslv2 {
                self.ja3 = Some(with_md5(ja3_string(ch)));
                self.ja4 = Some(ja4(ch));
            }
        }
        if let Some(sh) = &self.server_hello {
            self.ja3s = Some(with_md5(ja3s_string(sh)));
        }
    }
}

fn with_md5(s: String) -> (String, String) {
    let h = hex(&Md5::digest(s.as_bytes()));
    (s, h)
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn join_dec<T: std::fmt::Display>(out: &mut String, vals: impl Iterator<Item = T>) {
    for (i, v) in vals.enumerate() {
        if i > 0 {
            out.push('-');
        }
        let _ = write!(out, "{v}");
    }
}

/// JA3: `version,ciphers,extensions,groups,point_formats`, GREASE removed.
pub fn ja3_string(ch: &ClientHello) -> String {
    let mut s = String::with_capacity(256);
    let _ = write!(s, "{},", ch.version);
    join_dec(&mut s, ch.ciphers.iter().filter(|c| !is_grease(**c)));
    s.push(',');
    join_dec(&mut s, ch.extensions.iter().filter(|c| !is_grease(**c)));
    s.push(',');
    join_dec(&mut s, ch.groups.iter().filter(|c| !is_grease(**c)));
    s.push(',');
    join_dec(&mut s, ch.ec_point_formats.iter());
    s
}

/// JA3S: `version,cipher,extensions`.
pub fn ja3s_string(sh: &ServerHello) -> String {
    let mut s = String::with_capacity(64);
    let _ = write!(s, "{},{},", sh.legacy_version, sh.cipher);
    join_dec(&mut s, sh.extensions.iter().filter(|c| !is_grease(**c)));
    s
}

/// JA4 (FoxIO): `t<ver><d|i><#ciphers><#exts><alpn>_<sha256(sorted ciphers)>_<sha256(sorted
/// exts w/o SNI, ALPN + "_" + sig algs)>`, each hash truncated to 12 hex digits.
pub fn ja4(ch: &ClientHello) -> String {
    let sv = ch
        .supported_versions
        .iter()
        .copied()
        .filter(|v| !is_grease(*v))
        .max();
    let version = match sv.unwrap_or(ch.version) {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    };
    let ciphers: Vec<u16> = ch
        .ciphers
        .iter()
        .copied()
        .filter(|c| !is_grease(*c))
        .collect();
    let exts: Vec<u16> = ch
        .extensions
        .iter()
        .copied()
        .filter(|c| !is_grease(*c))
        .collect();
    let sni = if exts.contains(&EXT_SNI) { 'd' } else { 'i' };
    let alpn = ja4_alpn(ch.alpns.first().map(|a| a.as_slice()));
    let mut out = format!(
        "t{version}{sni}{:02}{:02}{alpn}_",
        ciphers.len().min(99),
        exts.len().min(99)
    );
    let mut sorted = ciphers;
    sorted.sort_unstable();
    out.push_str(&ja4_hash_list(&sorted, None));
    out.push('_');
    let mut sorted_exts: Vec<u16> = exts
        .into_iter()
        .filter(|e| *e != EXT_SNI && *e != EXT_ALPN)
        .collect();
    sorted_exts.sort_unstable();
    let sigs: Vec<u16> = ch
        .sig_algs
        .iter()
        .copied()
        .filter(|s| !is_grease(*s))
        .collect();
    out.push_str(&ja4_hash_list(&sorted_exts, Some(&sigs)));
    out
}

fn ja4_alpn(first: Option<&[u8]>) -> String {
    let Some(a) = first else {
        return "00".into();
    };
    let (Some(&f), Some(&l)) = (a.first(), a.last()) else {
        return "00".into();
    };
    if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
        let mut s = String::with_capacity(2);
        s.push(char::from(f));
        s.push(char::from(l));
        s
    } else {
        // Not printable: first and last hex digits of the value, per the spec.
        let h = hex(&[f, l]);
        let b = h.as_bytes();
        let mut s = String::with_capacity(2);
        s.push(char::from(b.first().copied().unwrap_or(b'0')));
        s.push(char::from(b.last().copied().unwrap_or(b'0')));
        s
    }
}

/// Truncated SHA-256 of a comma-separated hex list (plus `_` and the signature algorithms);
/// "000000000000" for an empty list, per the FoxIO spec.
fn ja4_hash_list(vals: &[u16], sigs: Option<&[u16]>) -> String {
    if vals.is_empty() {
        return "000000000000".into();
    }
    let mut raw = String::with_capacity(vals.len() * 5 + 64);
    for (i, v) in vals.iter().enumerate() {
        if i > 0 {
            raw.push(',');
        }
        let _ = write!(raw, "{v:04x}");
    }
    // The separator stays even without signature algorithms, as the reference
    // implementation (and Suricata >= 8.0.3) hash it.
    if let Some(sigs) = sigs {
        raw.push('_');
        for (i, v) in sigs.iter().enumerate() {
            if i > 0 {
                raw.push(',');
            }
            let _ = write!(raw, "{v:04x}");
        }
    }
    let mut h = hex(&Sha256::digest(raw.as_bytes()));
    h.truncate(12);
    h
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) for a Unix timestamp, as Suricata logs certificate validity.
pub fn format_timestamp(ts: i64) -> String {
    let secs = ts.rem_euclid(86400);
    let (y, m, d) = crate::calendar::civil_from_days(ts.div_euclid(86400));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

struct Ja3Obj<'a>(&'a (String, String));
impl Serialize for Ja3Obj<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("hash", &self.0 .1)?;
        m.serialize_entry("string", &self.0 .0)?;
        m.end()
    }
}

struct StrList<'a>(&'a [Vec<u8>]);
impl Serialize for StrList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|b| eve_bytes_to_string(b)))
    }
}

struct Base64List<'a>(&'a [Vec<u8>]);
impl Serialize for Base64List<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|b| base64(b)))
    }
}

struct ClientCertObj<'a>(&'a TlsHandshake);
impl Serialize for ClientCertObj<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let hs = self.0;
        let mut m = s.serialize_map(None)?;
        if let Some(c) = &hs.client_cert {
            serialize_client_cert_fields(&mut m, c)?;
        }
        if hs.log.fields.has(TlsFields::CLIENT_CERTIFICATE) {
            if let Some(first) = hs.client_chain.first() {
                m.serialize_entry("certificate", &base64(first))?;
            }
        }
        if hs.log.fields.has(TlsFields::CLIENT_CHAIN) && !hs.client_chain.is_empty() {
            m.serialize_entry("chain", &Base64List(&hs.client_chain))?;
        }
        m.end()
    }
}

/// The client certificate's fields, as Suricata's `client` object has them.
fn serialize_client_cert_fields<M: SerializeMap>(m: &mut M, c: &CertInfo) -> Result<(), M::Error> {
    m.serialize_entry("subject", &c.subject)?;
    m.serialize_entry("issuerdn", &c.issuer)?;
    m.serialize_entry("fingerprint", &c.fingerprint)?;
    m.serialize_entry("serial", &c.serial)?;
    if c.not_before != 0 {
        m.serialize_entry("notbefore", &format_timestamp(c.not_before))?;
    }
    if c.not_after != 0 {
        m.serialize_entry("notafter", &format_timestamp(c.not_after))?;
    }
    Ok(())
}

struct ClientHsObj<'a>(&'a ClientHello);
impl Serialize for ClientHsObj<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ch = self.0;
        let mut m = s.serialize_map(None)?;
        let v = ch
            .supported_versions
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .max()
            .unwrap_or(ch.version);
        m.serialize_entry("version", &version_string(v))?;
        let ciphers: Vec<u16> = ch
            .ciphers
            .iter()
            .copied()
            .filter(|c| !is_grease(*c))
            .collect();
        if !ciphers.is_empty() {
            m.serialize_entry("ciphers", &ciphers)?;
        }
        let exts: Vec<u16> = ch
            .extensions
            .iter()
            .copied()
            .filter(|c| !is_grease(*c))
            .collect();
        if !exts.is_empty() {
            m.serialize_entry("exts", &exts)?;
        }
        let sigs: Vec<u16> = ch
            .sig_algs
            .iter()
            .copied()
            .filter(|c| !is_grease(*c))
            .collect();
        if !sigs.is_empty() {
            m.serialize_entry("sig_algs", &sigs)?;
        }
        m.end()
    }
}

struct ServerHsObj<'a>(&'a ServerHello);
impl Serialize for ServerHsObj<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let sh = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("version", &version_string(sh.version()))?;
        m.serialize_entry("cipher", &sh.cipher)?;
        let exts: Vec<u16> = sh
            .extensions
            .iter()
            .copied()
            .filter(|c| !is_grease(*c))
            .collect();
        if !exts.is_empty() {
            m.serialize_entry("exts", &exts)?;
        }
        m.end()
    }
}

/// The EVE `tls` object, fields in Suricata 8's order (`JsonTlsLogFields`), absent ones left out.
impl Serialize for TlsHandshake {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let log = &self.log;
        let on = |f: TlsFields| log.fields.has(f);
        let cert = self.server_cert.as_ref();
        let mut m = s.serialize_map(None)?;
        if let Some(c) = cert {
            if on(TlsFields::SUBJECT) {
                m.serialize_entry("subject", &c.subject)?;
            }
            if on(TlsFields::ISSUER) {
                m.serialize_entry("issuerdn", &c.issuer)?;
            }
            if on(TlsFields::SUBJECTALTNAME) && !c.sans.is_empty() {
                m.serialize_entry("subjectaltname", &c.sans)?;
            }
        }
        if on(TlsFields::SESSION_RESUMED) && self.session_resumed {
            m.serialize_entry("session_resumed", &true)?;
        }
        if let Some(c) = cert {
            if on(TlsFields::SERIAL) {
                m.serialize_entry("serial", &c.serial)?;
            }
            if on(TlsFields::FINGERPRINT) {
                m.serialize_entry("fingerprint", &c.fingerprint)?;
            }
        }
        if let Some(sni) = self.sni().filter(|_| on(TlsFields::SNI)) {
            m.serialize_entry("sni", &eve_bytes_to_string(sni))?;
        }
        if on(TlsFields::VERSION) {
            m.serialize_entry("version", &self.version_str())?;
        }
        if let Some(c) = cert {
            if on(TlsFields::NOT_BEFORE) && c.not_before != 0 {
                m.serialize_entry("notbefore", &format_timestamp(c.not_before))?;
            }
            if on(TlsFields::NOT_AFTER) && c.not_after != 0 {
                m.serialize_entry("notafter", &format_timestamp(c.not_after))?;
            }
        }
        if on(TlsFields::CERTIFICATE) {
            if let Some(first) = self.server_chain.first() {
                m.serialize_entry("certificate", &base64(first))?;
            }
        }
        if on(TlsFields::CHAIN) && !self.server_chain.is_empty() {
            m.serialize_entry("chain", &Base64List(&self.server_chain))?;
        }
        if log.ja3 {
            if let Some(j) = self.ja3.as_ref().filter(|_| on(TlsFields::JA3)) {
                m.serialize_entry("ja3", &Ja3Obj(j))?;
            }
            if let Some(j) = self.ja3s.as_ref().filter(|_| on(TlsFields::JA3S)) {
                m.serialize_entry("ja3s", &Ja3Obj(j))?;
            }
        }
        if let Some(j) = self.ja4.as_ref().filter(|_| log.ja4 && on(TlsFields::JA4)) {
            m.serialize_entry("ja4", j)?;
        }
        if on(TlsFields::CLIENT_ALPNS) && !self.client_alpns().is_empty() {
            m.serialize_entry("client_alpns", &StrList(self.client_alpns()))?;
        }
        if on(TlsFields::SERVER_ALPNS) && !self.server_alpns().is_empty() {
            m.serialize_entry("server_alpns", &StrList(self.server_alpns()))?;
        }
        if on(TlsFields::CLIENT_HANDSHAKE) {
            if let Some(ch) = &self.client_hello {
                m.serialize_entry("client_handshake", &ClientHsObj(ch))?;
            }
        }
        if on(TlsFields::SERVER_HANDSHAKE) {
            if let Some(sh) = &self.server_hello {
                m.serialize_entry("server_handshake", &ServerHsObj(sh))?;
            }
        }
        if on(TlsFields::CLIENT) && self.client_cert.is_some() {
            m.serialize_entry("client", &ClientCertObj(self))?;
        }
        m.end()
    }
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b0 = u32::from(c.first().copied().unwrap_or(0));
        let b1 = u32::from(c.get(1).copied().unwrap_or(0));
        let b2 = u32::from(c.get(2).copied().unwrap_or(0));
        let n = (b0 << 16) | (b1 << 8) | b2;
        let idx = |shift: u32| char::from(T[((n >> shift) & 63) as usize]);
        out.push(idx(18));
        out.push(idx(12));
        out.push(if c.len() > 1 { idx(6) } else { '=' });
        out.push(if c.len() > 2 { idx(0) } else { '=' });
    }
    out
}

/// Whether the first bytes of a direction look like TLS/SSL: a handshake record header with a
/// plausible version and length (and hello type once visible), or an SSLv2-compatible
/// ClientHello.
pub fn probe(dir: Direction, data: &[u8]) -> Probe {
    let Some(&b0) = data.first() else {
        return Probe::NeedMore;
    };
    if b0 == CT_HANDSHAKE {
        if data.len() < 6 {
            // Check what is there already so non-TLS bails out early.
            if data.get(1).is_some_and(|&m| m != 3) || data.get(2).is_some_and(|&m| m > 4) {
                return Probe::NoMatch;
            }
            if data.len() >= 3 {
                // A handshake record header with an SSL 3.0–TLS 1.3 version is TLS, as
                // Suricata's detection patterns (|16 03 0x|) take it, even when the record
                // itself turns out malformed (the parser then reports that).
                return Probe::Match;
            }
            return Probe::NeedMore;
        }
        let (Some(&maj), Some(&min)) = (data.get(1), data.get(2)) else {
            return Probe::NeedMore;
        };
        let len = usize::from(u16::from_be_bytes([
            data.get(3).copied().unwrap_or(0),
            data.get(4).copied().unwrap_or(0),
        ]));
        if maj != 3 || min > 4 {
            return Probe::NoMatch;
        }
        if !(4..=MAX_RECORD_LEN).contains(&len) {
            // Same header rule as above: a TLS record with a broken length is still TLS.
            return Probe::Match;
        }
        return match data.get(5) {
            Some(&HS_CLIENT_HELLO | &HS_SERVER_HELLO) => Probe::Match,
            _ => Probe::NoMatch,
        };
    }
    if b0 & 0x80 != 0 && dir == Direction::ToServer {
        // SSLv2 record: 2-byte length with the high bit set, then CLIENT-HELLO (1) and a
        // version of SSLv2 or SSLv3/TLS.
        if data.len() < 5 {
            return Probe::NeedMore;
        }
        let len = (usize::from(b0 & 0x7f) << 8) | usize::from(data.get(1).copied().unwrap_or(0));
        let ty = data.get(2).copied().unwrap_or(0);
        let ver = u16::from_be_bytes([
            data.get(3).copied().unwrap_or(0),
            data.get(4).copied().unwrap_or(0),
        ]);
        if ty == 1 && (ver == 0x0002 || (0x0300..=0x0303).contains(&ver)) && len >= 9 {
            return Probe::Match;
        }
    }
    Probe::NoMatch
}

/// Big-endian reader for the SSLv2 hello, the one message tls-parser has no parser for.
struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
}

fn u16_list(data: &[u8]) -> Vec<u16> {
    data.chunks_exact(2)
        .take(MAX_LIST)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

/// An 8-bit-length vector.
fn vec8(i: &[u8]) -> IResult<&[u8], &[u8]> {
    length_data(be_u8)(i)
}

/// A 16-bit-length vector.
fn vec16(i: &[u8]) -> IResult<&[u8], &[u8]> {
    length_data(be_u16)(i)
}

/// Next extension of a hello's extension block: (type, data, rest). tls-parser's typed
/// extension-list parsers are not used for the split: they end the list quietly at the first
/// extension whose content they reject (an odd-length group list, a non-empty
/// extended_master_secret), which would hide every extension after it from JA3/JA4.
fn next_extension(exts: &[u8]) -> Option<(u16, &[u8], &[u8])> {
    match parse_tls_extension_unknown(exts) {
        Ok((rest, TlsExtension::Unknown(ty, data))) => Some((ty.0, data, rest)),
        _ => None,
    }
}

/// Parses the ALPN extension body: a 16-bit list of 8-bit-length protocol names. None when a
/// name runs past the list.
fn parse_alpn(data: &[u8]) -> Option<Vec<Vec<u8>>> {
    let Ok((rest, TlsExtension::ALPN(names))) = parse_tls_extension_alpn_content(data) else {
        return None;
    };
    // tls-parser ends the list quietly at a name that runs past it: the names read must fill
    // the list (2 length bytes, then the list, then `rest`).
    let list_len = data.len().saturating_sub(rest.len() + 2);
    if names.iter().map(|n| 1 + n.len()).sum::<usize>() != list_len {
        return None;
    }
    Some(names.iter().take(MAX_LIST).map(|n| n.to_vec()).collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HelloError {
    Malformed,
    SniType,
    SniLength,
}

fn parse_client_hello(
    body: &[u8],
    events: &mut Vec<&'static str>,
) -> Result<ClientHello, HelloError> {
    let (rest, hello) =
        parse_tls_handshake_client_hello(body).map_err(|_| HelloError::Malformed)?;
    // tls-parser takes an extension block that runs past the message for an absent one; it is
    // a malformed message.
    if hello.ext.is_none() && !rest.is_empty() {
        return Err(HelloError::Malformed);
    }
    let mut ch = ClientHello {
        version: hello.version.0,
        session_id: hello.session_id.unwrap_or_default().to_vec(),
        ciphers: hello.ciphers.iter().take(MAX_LIST).map(|c| c.0).collect(),
        ..Default::default()
    };
    let mut exts = hello.ext.unwrap_or_default();
    while !exts.is_empty() {
        let (ty, data, rest) = next_extension(exts).ok_or(HelloError::Malformed)?;
        exts = rest;
        if ch.extensions.len() < MAX_LIST {
            ch.extensions.push(ty);
        }
        match ty {
            EXT_SNI => {
                if ch.sni.is_some() {
                    events.push("MULTIPLE_SNI_EXTENSIONS");
                    continue;
                }
                // An empty or unreadable server_name_list is tolerated (empty is legal in a
                // ServerHello).
                if data.is_empty() {
                    continue;
                }
                let Ok((after, TlsExtension::SNI(names))) = parse_tls_extension_sni_content(data)
                else {
                    continue;
                };
                // Only the first (host_name) entry matters.
                if let Some(&(name_type, name)) = names.first() {
                    if name_type != SNIType::HostName {
                        return Err(HelloError::SniType);
                    }
                    if name.len() > MAX_SNI_LEN {
                        return Err(HelloError::SniLength);
                    }
                    ch.sni = Some(name.to_vec());
                } else {
                    // tls-parser drops an entry it cannot read whole; the list's first byte
                    // still tells a wrong name type from a short entry.
                    let list = data
                        .get(2..data.len().saturating_sub(after.len()))
                        .unwrap_or_default();
                    return Err(match list.first() {
                        Some(&t) if t != SNIType::HostName.0 => HelloError::SniType,
                        _ => HelloError::SniLength,
                    });
                }
            }
            EXT_GROUPS => {
                // Not tls-parser's group parser: it rejects an odd-length list, which has
                // always been read up to the odd byte.
                if let Ok((_, v)) = vec16(data) {
                    ch.groups = u16_list(v);
                }
            }
            EXT_EC_POINT_FORMATS => {
                if let Ok((_, TlsExtension::EcPointFormats(v))) =
                    parse_tls_extension_ec_point_formats_content(data)
                {
                    ch.ec_point_formats = v.iter().copied().take(MAX_LIST).collect();
                }
            }
            EXT_SIG_ALGS => {
                if let Ok((_, TlsExtension::SignatureAlgorithms(mut v))) =
                    parse_tls_extension_signature_algorithms_content(data)
                {
                    v.truncate(MAX_LIST);
                    ch.sig_algs = v;
                }
            }
            EXT_ALPN => {
                if let Some(v) = parse_alpn(data) {
                    ch.alpns = v;
                }
            }
            EXT_SUPPORTED_VERSIONS => {
                // tls-parser's own parser ignores the list's length byte (and reads a 2-byte
                // body as a ServerHello's single version): the list is read here.
                if let Ok((_, v)) = vec8(data) {
                    ch.supported_versions = u16_list(v);
                }
            }
            _ => {}
        }
    }
    Ok(ch)
}

/// Parses a ServerHello body, which is overwritten in its first two bytes (see below).
/// Returns the hello and whether it is a HelloRetryRequest.
fn parse_server_hello(body: &mut [u8]) -> Option<(ServerHello, bool)> {
    let version = body.get_mut(..2)?;
    let legacy_version = u16::from_be_bytes([*version.first()?, *version.get(1)?]);
    // tls-parser picks the ServerHello layout by legacy_version and refuses the versions it has
    // no layout for (TLS 1.3 drafts other than 18, anything unknown) or reads SSLv3 without
    // extensions. Only one thing changes the layout: drafts before 22 carry no session id and
    // compression. So it is handed the version of the right layout and the real one is kept.
    let draft = matches!(legacy_version, 0x7f01..=0x7f15);
    let stand_in: u16 = if draft { 0x7f12 } else { 0x0303 };
    version.copy_from_slice(&stand_in.to_be_bytes());
    let (rest, random, session_id, cipher, ext) = match parse_tls_handshake_msg_server_hello(body) {
        Ok((rest, TlsMessageHandshake::ServerHello(sh))) => {
            (rest, sh.random, sh.session_id, sh.cipher, sh.ext)
        }
        Ok((rest, TlsMessageHandshake::ServerHelloV13Draft18(sh))) => {
            (rest, sh.random, None, sh.cipher, sh.ext)
        }
        _ => return None,
    };
    // An extension block that runs past the message is malformed, not absent.
    if ext.is_none() && !rest.is_empty() {
        return None;
    }
    let mut sh = ServerHello {
        legacy_version,
        session_id: session_id.unwrap_or_default().to_vec(),
        cipher: cipher.0,
        ..Default::default()
    };
    let hrr = random == HRR_RANDOM;
    let mut exts = ext.unwrap_or_default();
    while !exts.is_empty() {
        let (ty, data, rest) = next_extension(exts)?;
        exts = rest;
        if sh.extensions.len() < MAX_LIST {
            sh.extensions.push(ty);
        }
        match ty {
            EXT_SUPPORTED_VERSIONS => {
                sh.selected_version = be_u16::<_, ()>(data).ok().map(|(_, v)| v);
            }
            EXT_ALPN => {
                if let Some(v) = parse_alpn(data) {
                    sh.alpns = v;
                }
            }
            _ => {}
        }
    }
    Some((sh, hrr))
}

/// Decodes one DER certificate the way Suricata publishes it: all fields or none.
fn decode_cert(der: &[u8]) -> Option<CertInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut sans = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for gn in san.value.general_names.iter().take(MAX_SANS) {
            use x509_parser::extensions::GeneralName as G;
            match gn {
                G::DNSName(s) | G::RFC822Name(s) | G::URI(s) => sans.push((*s).to_owned()),
                G::IPAddress(b) => match b.len() {
                    4 => {
                        let a: [u8; 4] = (*b).try_into().ok()?;
                        sans.push(std::net::Ipv4Addr::from(a).to_string());
                    }
                    16 => {
                        let a: [u8; 16] = (*b).try_into().ok()?;
                        sans.push(std::net::Ipv6Addr::from(a).to_string());
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let digest = Sha1::digest(der);
    let mut fp = String::with_capacity(60);
    for (i, b) in digest.iter().enumerate() {
        if i > 0 {
            fp.push(':');
        }
        let _ = write!(fp, "{b:02x}");
    }
    Some(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        // Suricata logs the serial in upper-case hex.
        serial: cert.raw_serial_as_string().to_ascii_uppercase(),
        fingerprint: fp,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        sans,
    })
}

/// Record-layer state of one direction.
#[derive(Debug, Default)]
struct DirState {
    hdr: [u8; 5],
    hdr_len: usize,
    /// Body bytes of the current record still to come.
    body_left: usize,
    /// Whether the current record's body feeds the handshake reassembler.
    body_to_hs: bool,
    /// Partial handshake message (header included), bounded by `MAX_HS_MSG_LEN + 4`.
    hs_buf: Vec<u8>,
    /// Bytes of an oversized handshake message still to be dropped.
    hs_skip: usize,
    /// Handshake records are encrypted from here on (after CCS before TLS 1.3).
    hs_encrypted: bool,
    ccs: bool,
    app_data: bool,
    /// Parsing of this direction gave up (error or gap); only the other one goes on.
    stopped: bool,
    records: u64,
    /// Whether the first bytes were an SSLv2 record (header is 2 bytes, not 5).
    sslv2: bool,
}

/// TLS parser for one flow.
#[derive(Debug)]
pub struct TlsParser {
    cfg: TlsConfig,
    dirs: [DirState; 2],
    hs: Box<TlsHandshake>,
    started: bool,
    emitted: bool,
    /// Server chose TLS 1.3 (a HelloRetryRequest counts): handshake records stay plaintext
    /// after CCS, everything encrypted travels as application data.
    tls13: bool,
    /// A real ServerHello (not an HRR) was seen.
    sh_final: bool,
}

fn idx(dir: Direction) -> usize {
    match dir {
        Direction::ToServer => 0,
        Direction::ToClient => 1,
    }
}

fn dir_of(i: usize) -> Direction {
    if i == 0 {
        Direction::ToServer
    } else {
        Direction::ToClient
    }
}

impl TlsParser {
    pub fn new(cfg: TlsConfig) -> Self {
        TlsParser {
            cfg,
            dirs: [DirState::default(), DirState::default()],
            hs: Box::new(TlsHandshake {
                log: cfg,
                ..Default::default()
            }),
            started: false,
            emitted: false,
            tls13: false,
            sh_final: false,
        }
    }

    fn event(out: &mut AppOutput, name: &'static str, d: usize) {
        out.event(AppProto::Tls, name, dir_of(d), Some(0));
    }

    /// Gives up on direction `d` because its bytes are malformed.
    fn stop(&mut self, d: usize, name: &'static str, out: &mut AppOutput) {
        out.parser_error();
        self.stop_after_gap(d, name, out);
    }

    fn stop_after_gap(&mut self, d: usize, name: &'static str, out: &mut AppOutput) {
        Self::event(out, name, d);
        if let Some(st) = self.dirs.get_mut(d) {
            st.stopped = true;
            st.hs_buf = Vec::new();
        }
        self.check_progress(out);
    }

    /// The server side is finished once TLS 1.3 picked its parameters, or its CCS (TLS <= 1.2).
    fn server_done(&self) -> bool {
        let s = &self.dirs[1];
        s.stopped || (self.tls13 && self.sh_final) || (!self.tls13 && s.ccs)
    }

    fn client_done(&self) -> bool {
        let c = &self.dirs[0];
        if c.stopped {
            return true;
        }
        if self.tls13 {
            // A second ClientHello may follow an HRR even after a compatibility CCS.
            self.sh_final && (c.ccs || c.app_data)
        } else {
            c.ccs
        }
    }

    fn emit(&mut self, out: &mut AppOutput) {
        if self.emitted || !self.started {
            return;
        }
        self.emitted = true;
        let mut hs = std::mem::take(&mut self.hs);
        hs.log = self.cfg;
        hs.session_resumed = match (&hs.client_hello, &hs.server_hello) {
            (Some(ch), Some(sh)) => {
                !sh.session_id.is_empty()
                    && sh.session_id == ch.session_id
                    && hs.server_cert.is_none()
                    && !is_tls13(sh.version())
            }
            _ => false,
        };
        hs.finalize();
        out.records.push(AppRecord::Tls(hs));
    }

    fn check_progress(&mut self, out: &mut AppOutput) {
        if !self.emitted && self.started && self.server_done() {
            let s = &self.dirs[1];
            // Only a real end of the server's handshake, not a direction that died before
            // saying anything.
            if !s.stopped || self.client_done() {
                self.emit(out);
            }
        }
    }

    fn feed(&mut self, d: usize, mut data: &[u8], out: &mut AppOutput) {
        while !data.is_empty() {
            let Some(st) = self.dirs.get_mut(d) else {
                return;
            };
            if st.stopped {
                return;
            }
            if st.body_left > 0 {
                let n = st.body_left.min(data.len());
                let (body, rest) = data.split_at(n);
                st.body_left -= n;
                data = rest;
                if st.body_to_hs {
                    self.handshake_bytes(d, body, out);
                }
                continue;
            }
            // Record header.
            let need = 5 - st.hdr_len;
            let n = need.min(data.len());
            let (h, rest) = data.split_at(n);
            st.hdr[st.hdr_len..st.hdr_len + n].copy_from_slice(h);
            st.hdr_len += n;
            data = rest;
            if st.records == 0 && d == 0 && st.hdr_len >= 2 && st.hdr[0] & 0x80 != 0 {
                // SSLv2 record: 2-byte header; its body is handled like a handshake message.
                st.sslv2 = true;
                let len = (usize::from(st.hdr[0] & 0x7f) << 8) | usize::from(st.hdr[1]);
                // The 3 header bytes beyond the 2-byte SSLv2 header belong to the body.
                let extra = st.hdr_len - 2;
                let extra_bytes = st.hdr;
                st.hdr_len = 0;
                st.records = 1;
                if len < extra || len > MAX_RECORD_LEN {
                    self.stop(d, "INVALID_SSLV2_HEADER", out);
                    return;
                }
                st.body_left = len - extra;
                st.body_to_hs = true;
                st.hs_buf.clear();
                st.hs_buf.extend_from_slice(&extra_bytes[2..2 + extra]);
                self.started = true;
                if st.body_left == 0 {
                    self.sslv2_hello(d, out);
                }
                continue;
            }
            if st.hdr_len < 5 {
                return;
            }
            st.hdr_len = 0;
            st.records += 1;
            // Gathered across segments above, decoded here once whole; five bytes are always
            // a header, the error arm only keeps this total.
            let Ok((_, hdr)) = parse_tls_record_header(&st.hdr) else {
                self.stop(d, "INVALID_SSL_RECORD", out);
                return;
            };
            let [maj, min] = hdr.version.to_be_bytes();
            let len = usize::from(hdr.len);
            if !(CT_CCS..=CT_HEARTBEAT).contains(&hdr.record_type.0) {
                self.stop(d, "INVALID_RECORD_TYPE", out);
                return;
            }
            if maj != 3 || min > 4 {
                self.stop(d, "INVALID_RECORD_VERSION", out);
                return;
            }
            if len > MAX_RECORD_LEN {
                self.stop(d, "INVALID_SSL_RECORD", out);
                return;
            }
            st.body_left = len;
            st.body_to_hs = false;
            match hdr.record_type {
                TlsRecordType::Handshake => {
                    self.started = true;
                    st.body_to_hs = !st.hs_encrypted;
                }
                TlsRecordType::ChangeCipherSpec => {
                    st.ccs = true;
                    // Before TLS 1.3 everything after CCS is encrypted; in 1.3 encrypted
                    // handshake messages travel as application data.
                    if !self.tls13 {
                        st.hs_encrypted = true;
                    }
                    self.check_progress(out);
                }
                TlsRecordType::ApplicationData => {
                    st.app_data = true;
                    st.hs_encrypted = true;
                    self.check_progress(out);
                }
                TlsRecordType::Heartbeat => {
                    Self::event(out, "HEARTBEAT_MESSAGE", d);
                }
                // Alerts carry nothing logged, nor does a CCS body: their bodies stream past
                // uncopied rather than being buffered for tls-parser's message parsers.
                _ => {}
            }
        }
    }

    /// Appends handshake-record body bytes and handles every complete message.
    fn handshake_bytes(&mut self, d: usize, mut bytes: &[u8], out: &mut AppOutput) {
        while !bytes.is_empty() {
            let Some(st) = self.dirs.get_mut(d) else {
                return;
            };
            if st.stopped || st.hs_encrypted {
                return;
            }
            if st.sslv2 {
                // Whole SSLv2 record is one message; the length was checked at the header.
                st.hs_buf.extend_from_slice(bytes);
                if st.body_left == 0 {
                    self.sslv2_hello(d, out);
                }
                return;
            }
            if st.hs_skip > 0 {
                let n = st.hs_skip.min(bytes.len());
                st.hs_skip -= n;
                bytes = bytes.get(n..).unwrap_or_default();
                continue;
            }
            if st.hs_buf.len() < 4 {
                let n = (4 - st.hs_buf.len()).min(bytes.len());
                st.hs_buf
                    .extend_from_slice(bytes.get(..n).unwrap_or_default());
                bytes = bytes.get(n..).unwrap_or_default();
                if st.hs_buf.len() < 4 {
                    return;
                }
            }
            let msg_len = (usize::from(st.hs_buf[1]) << 16)
                | (usize::from(st.hs_buf[2]) << 8)
                | usize::from(st.hs_buf[3]);
            if msg_len > MAX_HS_MSG_LEN {
                Self::event(out, "HANDSHAKE_INVALID_LENGTH", d);
                st.hs_buf.clear();
                st.hs_skip = msg_len;
                continue;
            }
            let have = st.hs_buf.len() - 4;
            let n = (msg_len - have).min(bytes.len());
            st.hs_buf
                .extend_from_slice(bytes.get(..n).unwrap_or_default());
            bytes = bytes.get(n..).unwrap_or_default();
            if st.hs_buf.len() - 4 < msg_len {
                return;
            }
            let mut msg = std::mem::take(&mut st.hs_buf);
            self.handshake_message(d, &mut msg, out);
            if let Some(st) = self.dirs.get_mut(d) {
                // Keep the allocation for the next message, unless it was a big one.
                if st.hs_buf.is_empty() && msg.capacity() <= 4096 {
                    st.hs_buf = msg;
                    st.hs_buf.clear();
                }
            }
        }
    }

    /// Handles one whole handshake message (header included). The ServerHello parser writes
    /// into the message, which is dropped or reused as the buffer afterwards.
    fn handshake_message(&mut self, d: usize, msg: &mut [u8], out: &mut AppOutput) {
        let ty = TlsHandshakeType(msg.first().copied().unwrap_or(0));
        let body = msg.get_mut(4..).unwrap_or_default();
        match (ty, d) {
            (TlsHandshakeType::ClientHello, 0) => {
                // A repeated ClientHello (retransmit, post-HRR) does not make a second session.
                if self.hs.client_hello.is_some() {
                    return;
                }
                let mut evs = Vec::new();
                let res = parse_client_hello(body, &mut evs);
                for e in evs {
                    Self::event(out, e, d);
                }
                match res {
                    Ok(ch) => self.hs.client_hello = Some(ch),
                    Err(HelloError::SniType) => Self::event(out, "INVALID_SNI_TYPE", d),
                    Err(HelloError::SniLength) => Self::event(out, "INVALID_SNI_LENGTH", d),
                    Err(HelloError::Malformed) => Self::event(out, "INVALID_HANDSHAKE_MESSAGE", d),
                }
            }
            (TlsHandshakeType::ServerHello, 1) => {
                let Some((sh, hrr)) = parse_server_hello(body) else {
                    Self::event(out, "INVALID_HANDSHAKE_MESSAGE", d);
                    return;
                };
                if is_tls13(sh.version()) {
                    self.tls13 = true;
                    // A CCS already seen in either direction was only the compatibility one.
                    for st in self.dirs.iter_mut() {
                        if !st.app_data {
                            st.hs_encrypted = false;
                        }
                    }
                }
                if !hrr {
                    self.sh_final = true;
                }
                // The final ServerHello wins over an HRR.
                if !hrr || self.hs.server_hello.is_none() {
                    self.hs.server_hello = Some(sh);
                }
                if self.tls13 && self.sh_final {
                    // Everything the server sends from here on is encrypted.
                    if let Some(st) = self.dirs.get_mut(1) {
                        st.hs_encrypted = true;
                    }
                }
                self.check_progress(out);
            }
            (TlsHandshakeType::Certificate, _) => self.certificate(d, body, out),
            // Known handshake types carry nothing we log.
            (
                TlsHandshakeType::HelloRequest
                | TlsHandshakeType::HelloVerifyRequest
                | TlsHandshakeType::NewSessionTicket
                | TlsHandshakeType::EndOfEarlyData
                | TlsHandshakeType::HelloRetryRequest
                | TlsHandshakeType::EncryptedExtensions
                | TlsHandshakeType::ServerKeyExchange
                | TlsHandshakeType::CertificateRequest
                | TlsHandshakeType::ServerDone
                | TlsHandshakeType::CertificateVerify
                | TlsHandshakeType::ClientKeyExchange
                | TlsHandshakeType::Finished
                | TlsHandshakeType::CertificateURL
                | TlsHandshakeType::CertificateStatus
                | TlsHandshakeType::KeyUpdate,
                _,
            ) => {}
            // supplemental_data, compressed_certificate, message_hash: known, though tls-parser
            // names none of them.
            (TlsHandshakeType(23 | 25 | 254), _) => {}
            _ => {
                // Unknown type, or a hello in the wrong direction: the message layer is not
                // trustworthy any more, so stop reading this direction's handshake.
                Self::event(out, "INVALID_HANDSHAKE_MESSAGE", d);
                if let Some(st) = self.dirs.get_mut(d) {
                    st.hs_encrypted = true;
                }
            }
        }
    }

    fn certificate(&mut self, d: usize, body: &[u8], out: &mut AppOutput) {
        let Ok((rest, TlsMessageHandshake::Certificate(certs))) =
            parse_tls_handshake_msg_certificate(body)
        else {
            Self::event(out, "CERTIFICATE_INVALID_LENGTH", d);
            return;
        };
        // tls-parser ends the chain quietly at an entry that runs past the list: the entries
        // read (3 length bytes each) must fill it, else the chain is cut and that is reported.
        let list_len = body.len().saturating_sub(rest.len() + 3);
        let read: usize = certs.cert_chain.iter().map(|c| 3 + c.data.len()).sum();
        if read != list_len {
            Self::event(out, "CERTIFICATE_INVALID_LENGTH", d);
        }
        let chain: Vec<Vec<u8>> = certs
            .cert_chain
            .iter()
            .take(MAX_CHAIN_CERTS)
            .map(|c| c.data.to_vec())
            .collect();
        let info = match chain.first() {
            Some(first) => {
                let info = decode_cert(first);
                if info.is_none() {
                    Self::event(out, "INVALID_CERTIFICATE", d);
                }
                info
            }
            None => None,
        };
        // The first Certificate message of a direction is the one that counts.
        if d == 1 {
            if self.hs.server_chain.is_empty() {
                self.hs.server_chain = chain;
                self.hs.server_cert = info;
            }
        } else if self.hs.client_chain.is_empty() {
            self.hs.client_chain = chain;
            self.hs.client_cert = info;
        }
    }

    /// SSLv2-compatible ClientHello: version and cipher specs (those that map to TLS suites).
    fn sslv2_hello(&mut self, d: usize, out: &mut AppOutput) {
        let Some(st) = self.dirs.get_mut(d) else {
            return;
        };
        let msg = std::mem::take(&mut st.hs_buf);
        st.sslv2 = false;
        st.body_to_hs = false;
        let mut r = Rd(&msg);
        let parsed = (|| {
            let ty = r.u8()?;
            if ty != 1 {
                return None;
            }
            let version = r.u16()?;
            let cs_len = usize::from(r.u16()?);
            let sid_len = usize::from(r.u16()?);
            let ch_len = usize::from(r.u16()?);
            let specs = r.take(cs_len)?;
            let sid = r.take(sid_len)?;
            r.take(ch_len)?;
            let ciphers = specs
                .chunks_exact(3)
                .filter(|c| c[0] == 0)
                .take(MAX_LIST)
                .map(|c| u16::from_be_bytes([c[1], c[2]]))
                .collect();
            Some(ClientHello {
                version,
                session_id: sid.to_vec(),
                ciphers,
                sslv2: true,
                ..Default::default()
            })
        })();
        match parsed {
            Some(ch) => {
                if self.hs.client_hello.is_none() {
                    self.hs.client_hello = Some(ch);
                }
            }
            None => self.stop(d, "INVALID_SSLV2_HEADER", out),
        }
    }
}

impl AppParser for TlsParser {
    fn parse(&mut self, dir: Direction, data: &[u8], _ts_ns: u64, out: &mut AppOutput) {
        self.feed(idx(dir), data, out);
    }

    fn gap(&mut self, dir: Direction, len: u64, out: &mut AppOutput) {
        let d = idx(dir);
        let Some(st) = self.dirs.get_mut(d) else {
            return;
        };
        if st.stopped || len == 0 {
            return;
        }
        // A gap inside a body we only count (encrypted data) loses nothing: skip it and stay
        // in sync. Anywhere else the next record header cannot be found reliably.
        if !st.body_to_hs && st.hdr_len == 0 && (len as u128) <= st.body_left as u128 {
            st.body_left -= len as usize;
            return;
        }
        self.stop_after_gap(d, "INVALID_SSL_RECORD", out);
    }

    fn end_of_stream(&mut self, _dir: Direction, _ts_ns: u64, _out: &mut AppOutput) {}

    fn finish(&mut self, _ts_ns: u64, out: &mut AppOutput) {
        self.emit(out);
    }

    fn is_done(&self) -> bool {
        self.server_done() && self.client_done() && (self.emitted || !self.started)
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
