//! Syslog over TLS (RFC 5425): EVE events as RFC 5424 messages to a SIEM's syslog receiver.
//!
//! Each event becomes one message, framed by octet counting (`LEN SP MSG`, so an event of any
//! size goes through whole):
//!
//! ```text
//! <PRI>1 2024-05-13T10:00:00.123456Z HOSTNAME vigil PROCID MSGID - {"timestamp":...}
//! ```
//!
//! * PRI is `facility * 8 + severity`. The facility is configurable (`local5` by default, as
//!   many SIEM setups expect); the severity is warning (4) for alerts and notice (5) for every
//!   other event type (flows, protocol records, anomalies, stats): alerts stand out in a
//!   receiver's severity filters without anything else being mistaken for an error.
//! * TIMESTAMP is the event time, RFC 3339 in UTC with microseconds.
//! * HOSTNAME is the sensor's host name (configurable), APP-NAME `vigil`, PROCID the process
//!   id, MSGID the EVE event type (`alert`, `flow`, ...), no structured data, and MSG the EVE
//!   JSON object as it is (UTF-8, without a byte order mark, which receivers would keep as
//!   part of the message).
//!
//! TLS is rustls (TLS 1.2 and 1.3, ring provider). The server is always verified, against the
//! CA file the configuration must name: there is no unverified mode and no fallback to system
//! roots, so a sensor never ships events to a receiver nobody vouched for. A client
//! certificate and key can be given for receivers that require mutual TLS.
//!
//! Delivery: `send` returns once the frames are written to the socket. RFC 5425 has no
//! acknowledgements, so what was written just before a connection broke may never have been
//! read by the receiver (socket buffers, which on loopback grow to several MB). The sink keeps
//! the last `resend=BYTES` of frames it wrote (8 MiB by default) and, when a broken connection
//! is replaced, writes them again first: at least once, with duplicates after a reconnect,
//! instead of a silent gap. Before each batch the sink reads whatever the server sent (a close_notify, an alert, EOF)
//! without blocking, so a receiver that went away is noticed before the next batch is written
//! into a dead socket.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{AlertDescription, CertificateError, ClientConfig, ClientConnection, RootCertStore};
use rustls::{SignatureScheme, StreamOwned};

use super::sink::{EncodedEvent, EventType, Sink, SinkError};
use super::time::rfc3339_micros;

/// The URL scheme the CLI takes for this sink.
pub const SCHEME: &str = "syslog+tls";
/// APP-NAME of every message.
pub const APP_NAME: &str = "vigil";
/// Send and connect timeout unless the URL says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// After a handshake in which the server asked for a client certificate, how long the sink
/// waits for the server to reject it (servers such as rsyslog check the certificate only once
/// the handshake is over, then close the connection).
const CLIENT_AUTH_VERDICT_WAIT: Duration = Duration::from_millis(500);
/// Frames are written to TLS in chunks of about this size, so a batch of any size is never
/// rendered whole in memory.
const WRITE_CHUNK: usize = 256 * 1024;
/// TCP keepalive: first probe after this much idle time, then every `KEEPALIVE_INTERVAL`.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

const PARAMS: &str = "ca, cert, key, facility, hostname, sni, timeout, resend";
/// Frames written again after a reconnect, unless the URL says otherwise (`resend=BYTES`).
pub const DEFAULT_RESEND_BYTES: usize = 8 << 20;

/// A syslog facility (RFC 5424 section 6.2.1), 0 to 23.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facility(u8);

const FACILITY_NAMES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "security", "console", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

impl Facility {
    pub const LOCAL5: Facility = Facility(21);

    /// A name (`local5`, `daemon`, ...) or a code (`21`).
    pub fn parse(s: &str) -> Option<Facility> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = FACILITY_NAMES.iter().position(|n| *n == lower) {
            return Some(Facility(i as u8));
        }
        match lower.parse::<u8>() {
            Ok(code) if (code as usize) < FACILITY_NAMES.len() => Some(Facility(code)),
            _ => None,
        }
    }

    pub fn code(self) -> u8 {
        self.0
    }

    pub fn name(self) -> &'static str {
        FACILITY_NAMES[self.0 as usize % FACILITY_NAMES.len()]
    }
}

impl Default for Facility {
    fn default() -> Self {
        Facility::LOCAL5
    }
}

/// Severity of an event type's messages: warning (4) for alerts, notice (5) for the rest.
pub fn severity(event_type: EventType) -> u8 {
    match event_type {
        EventType::Alert => 4,
        _ => 5,
    }
}

/// PRI of an event type's messages under `facility`.
pub fn pri(facility: Facility, event_type: EventType) -> u8 {
    facility.code() * 8 + severity(event_type)
}

/// Where and how to send: parsed from `syslog+tls://HOST:PORT?ca=FILE&...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogTlsConfig {
    /// Host name or IP address to connect to (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// PEM file of the CA certificate(s) the server's certificate must chain to.
    pub ca_file: PathBuf,
    /// PEM files of the client certificate (chain) and its private key, for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub facility: Facility,
    /// HOSTNAME of the messages; the machine's host name when not set.
    pub hostname: Option<String>,
    /// Name the server certificate must be valid for, when not `host`.
    pub sni: Option<String>,
    /// Connect timeout (TCP and handshake), and the longest one `send` may block.
    pub timeout: Duration,
    /// The last this many bytes of frames are written again after a broken connection is
    /// replaced (0: never).
    pub resend_bytes: usize,
}

impl SyslogTlsConfig {
    /// Parses `syslog+tls://HOST:PORT?ca=FILE[&cert=FILE&key=FILE][&facility=local5]
    /// [&hostname=NAME][&sni=NAME][&timeout=SECONDS][&resend=BYTES]`. Values may be percent-encoded. Files
    /// are only named here; [`SyslogTlsSink::new`] reads them.
    pub fn from_url(url: &str) -> Result<SyslogTlsConfig, String> {
        let rest = url
            .split_once("://")
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(SCHEME))
            .map(|(_, rest)| rest)
            .ok_or_else(|| format!("{url:?}: not a {SCHEME}://HOST:PORT?ca=FILE URL"))?;
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a, q),
            None => (rest, ""),
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.contains('/') {
            return Err(format!("{url:?}: a {SCHEME} URL has no path"));
        }
        if authority.contains('@') {
            return Err(format!("{url:?}: a {SCHEME} URL has no user information"));
        }
        let (host, port) = split_host_port(authority).map_err(|e| format!("{url:?}: {e}"))?;

        let mut ca_file = None;
        let mut cert = None;
        let mut key = None;
        let mut facility = None;
        let mut hostname = None;
        let mut sni = None;
        let mut timeout = None;
        let mut resend = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("{url:?}: parameter {pair:?} has no value"))?;
            let value = percent_decode(value).map_err(|e| format!("{url:?}: {name}: {e}"))?;
            if value.is_empty() {
                return Err(format!("{url:?}: parameter {name} is empty"));
            }
            let slot = match name {
                "ca" => &mut ca_file,
                "cert" => &mut cert,
                "key" => &mut key,
                "facility" => &mut facility,
                "hostname" => &mut hostname,
                "sni" => &mut sni,
                "timeout" => &mut timeout,
                "resend" => &mut resend,
                _ => {
                    return Err(format!(
                        "{url:?}: unknown parameter {name:?} (known: {PARAMS})"
                    ))
                }
            };
            if slot.replace(value).is_some() {
                return Err(format!("{url:?}: parameter {name} given twice"));
            }
        }

        let ca_file = ca_file.map(PathBuf::from).ok_or_else(|| {
            format!(
                "{url:?}: ca=FILE is required: the server certificate is always verified, \
                 against that CA file"
            )
        })?;
        let client_cert = match (cert, key) {
            (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
            (None, None) => None,
            (Some(_), None) => return Err(format!("{url:?}: cert=FILE needs key=FILE too")),
            (None, Some(_)) => return Err(format!("{url:?}: key=FILE needs cert=FILE too")),
        };
        let facility = match facility {
            None => Facility::default(),
            Some(f) => Facility::parse(&f).ok_or_else(|| {
                format!(
                    "{url:?}: unknown facility {f:?} (one of {} or 0 to 23)",
                    FACILITY_NAMES.join(", ")
                )
            })?,
        };
        if let Some(h) = &hostname {
            check_header_field("hostname", h, 255).map_err(|e| format!("{url:?}: {e}"))?;
        }
        if let Some(s) = &sni {
            ServerName::try_from(s.as_str())
                .map_err(|e| format!("{url:?}: sni {s:?} is not a valid server name: {e}"))?;
        }
        let timeout = match timeout {
            None => DEFAULT_TIMEOUT,
            Some(t) => match t.parse::<f64>() {
                Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= 3600.0 => {
                    Duration::from_secs_f64(secs)
                }
                _ => {
                    return Err(format!(
                        "{url:?}: timeout {t:?} is not a number of seconds between 0 and 3600"
                    ))
                }
            },
        };
        let resend_bytes = match resend {
            None => DEFAULT_RESEND_BYTES,
            Some(r) => r.parse::<usize>().map_err(|_| {
                format!("{url:?}: resend {r:?} is not a number of bytes (0 turns it off)")
            })?,
        };
        Ok(SyslogTlsConfig {
            host,
            port,
            ca_file,
            client_cert,
            facility,
            hostname,
            sni,
            timeout,
            resend_bytes,
        })
    }

    /// `syslog+tls://HOST:PORT`: the sink's name in logs and metrics (no file names).
    pub fn name(&self) -> String {
        if self.host.contains(':') {
            format!("{SCHEME}://[{}]:{}", self.host, self.port)
        } else {
            format!("{SCHEME}://{}:{}", self.host, self.port)
        }
    }
}

fn split_host_port(authority: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or("unclosed [ in the IPv6 address")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{host:?} is not an IPv6 address"));
        }
        let port = after
            .strip_prefix(':')
            .ok_or("missing port (syslog over TLS listens on 6514 by default): [ADDR]:PORT")?;
        (host, port)
    } else {
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or("missing port (syslog over TLS listens on 6514 by default): HOST:PORT")?;
        if host.contains(':') {
            return Err("an IPv6 address needs brackets: [ADDR]:PORT".into());
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => return Err(format!("port {port:?} is not a number from 1 to 65535")),
    };
    Ok((host.to_string(), port))
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// RFC 5424 header fields are 1 to `max` printable US-ASCII characters.
fn check_header_field(what: &str, value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() || value.len() > max || !value.bytes().all(|b| (33..=126).contains(&b)) {
        return Err(format!(
            "{what} {value:?} must be 1 to {max} printable ASCII characters without spaces"
        ));
    }
    Ok(())
}

/// The machine's host name, made a valid HOSTNAME field; `-` (nil) when there is none.
fn system_hostname() -> String {
    let name = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let clean: String = name
        .chars()
        .take(255)
        .map(|c| if c.is_ascii_graphic() { c } else { '-' })
        .collect();
    if clean.is_empty() {
        "-".into()
    } else {
        clean
    }
}

/// Appends one octet-counted frame (`LEN SP MSG`) for `ev` to `out`; `header` is scratch.
fn append_frame(
    out: &mut Vec<u8>,
    header: &mut String,
    facility: Facility,
    hostname: &str,
    procid: &str,
    ev: &EncodedEvent,
) {
    header.clear();
    let _ = write!(header, "<{}>1 ", pri(facility, ev.event_type));
    header.push_str(&rfc3339_micros(ev.ts_ns));
    let _ = write!(
        header,
        " {hostname} {APP_NAME} {procid} {} - ",
        ev.event_type.name()
    );
    let len = header.len() + ev.json.len();
    let _ = write!(out, "{len} ");
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&ev.json);
}

/// Hands rustls the client certificate (if any) and notes whether the server asked for one.
#[derive(Debug)]
struct ClientCert {
    key: Option<Arc<CertifiedKey>>,
    asked: Arc<AtomicBool>,
}

impl ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

fn read_file(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

/// The certificates of a PEM file, at least one. Shared with the webhook response action.
pub(crate) fn load_certs(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_file(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} {}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {}: no CERTIFICATE in the file",
            path.display()
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file. Shared with the webhook response action.
pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read_file("client key file", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        format!(
            "client key file {}: no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}",
            path.display()
        )
    })
}

/// The TCP socket under TLS. Every write is a `send`/`sendmsg` with `MSG_NOSIGNAL`, so a
/// receiver that reset the connection makes the write fail (EPIPE) rather than raise SIGPIPE,
/// whatever the process's SIGPIPE disposition (std's `write_vectored` is a plain `writev`).
struct Socket(TcpStream);

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        socket2::SockRef::from(&self.0).send_with_flags(buf, libc::MSG_NOSIGNAL)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        socket2::SockRef::from(&self.0).send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

type TlsStream = StreamOwned<ClientConnection, Socket>;

/// The syslog-over-TLS sink.
/// Chunks of frames written last, oldest first, kept to be written again after a reconnect.
#[derive(Default)]
struct ResendWindow {
    chunks: std::collections::VecDeque<Vec<u8>>,
    bytes: usize,
}

impl ResendWindow {
    /// Keeps a copy of frames just written, dropping the oldest chunks beyond `limit` bytes.
    fn remember(&mut self, written: &[u8], limit: usize) {
        if limit == 0 || written.is_empty() {
            return;
        }
        self.chunks.push_back(written.to_vec());
        self.bytes += written.len();
        while let Some(front) = self.chunks.front() {
            if self.bytes - front.len() < limit {
                break;
            }
            self.bytes -= front.len();
            self.chunks.pop_front();
        }
    }
}

pub struct SyslogTlsSink {
    cfg: SyslogTlsConfig,
    name: String,
    tls: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    /// Set by the certificate resolver when the server asks for a client certificate.
    client_cert_asked: Arc<AtomicBool>,
    hostname: String,
    procid: String,
    stream: Option<TlsStream>,
    buf: Vec<u8>,
    header: String,
    /// The last frames written, up to `resend_bytes`.
    recent: ResendWindow,
    /// A connection broke since `recent` was written: write it again on the next one.
    resend_on_connect: bool,
}

impl SyslogTlsSink {
    /// Reads the CA file and the client certificate and key (if any) now, so a bad file is
    /// reported at startup rather than at the first connection.
    pub fn new(cfg: SyslogTlsConfig) -> Result<SyslogTlsSink, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());

        let mut roots = RootCertStore::empty();
        for (i, cert) in load_certs("CA file", &cfg.ca_file)?.into_iter().enumerate() {
            roots.add(cert).map_err(|e| {
                format!(
                    "CA file {}: certificate {} is not a usable trust anchor: {e}",
                    cfg.ca_file.display(),
                    i + 1
                )
            })?;
        }

        let key = match &cfg.client_cert {
            None => None,
            Some((cert_file, key_file)) => {
                let chain = load_certs("client certificate file", cert_file)?;
                let key = load_key(key_file)?;
                let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
                    format!(
                        "client certificate {} and key {} do not go together: {e}",
                        cert_file.display(),
                        key_file.display()
                    )
                })?;
                Some(Arc::new(certified))
            }
        };
        let client_cert_asked = Arc::new(AtomicBool::new(false));
        let tls = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::new(ClientCert {
                key,
                asked: client_cert_asked.clone(),
            }));

        let server_name = ServerName::try_from(cfg.sni.as_deref().unwrap_or(&cfg.host))
            .map_err(|e| format!("{:?} is not a valid TLS server name: {e}", cfg.host))?
            .to_owned();
        let hostname = match &cfg.hostname {
            Some(h) => {
                check_header_field("hostname", h, 255)?;
                h.clone()
            }
            None => system_hostname(),
        };
        Ok(SyslogTlsSink {
            name: cfg.name(),
            cfg,
            tls: Arc::new(tls),
            server_name,
            client_cert_asked,
            hostname,
            procid: std::process::id().to_string(),
            stream: None,
            buf: Vec::with_capacity(WRITE_CHUNK + 64 * 1024),
            header: String::with_capacity(128),
            recent: ResendWindow::default(),
            resend_on_connect: false,
        })
    }

    /// The HOSTNAME field the messages carry.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    pub fn config(&self) -> &SyslogTlsConfig {
        &self.cfg
    }

    pub fn is_connected(&self) -> bool {
        self.stream.is_some()
    }

    /// `TLS 1.3` or `TLS 1.2` while connected.
    pub fn tls_version(&self) -> Option<&'static str> {
        match self.stream.as_ref()?.conn.protocol_version()? {
            rustls::ProtocolVersion::TLSv1_3 => Some("TLS 1.3"),
            rustls::ProtocolVersion::TLSv1_2 => Some("TLS 1.2"),
            _ => None,
        }
    }

    fn tcp_connect(&self, deadline: Instant) -> Result<TcpStream, SinkError> {
        let addrs: Vec<SocketAddr> = (self.cfg.host.as_str(), self.cfg.port)
            .to_socket_addrs()
            .map_err(|e| {
                SinkError::unavailable(&self.name, format!("cannot resolve {}: {e}", self.cfg.host))
            })?
            .collect();
        let mut last = None;
        for addr in &addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match TcpStream::connect_timeout(addr, left) {
                Ok(sock) => return Ok(sock),
                Err(e) => last = Some(format!("{addr}: {e}")),
            }
        }
        Err(SinkError::unavailable(
            &self.name,
            match last {
                Some(e) => format!("cannot connect: {e}"),
                None if addrs.is_empty() => format!("{} resolves to no address", self.cfg.host),
                None => "connect timed out".into(),
            },
        ))
    }

    /// Turns a handshake failure into `Refused` (certificates, protocol) or `Unavailable`.
    fn classify(&self, e: &io::Error) -> SinkError {
        let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
            return SinkError::unavailable(&self.name, format!("TLS handshake: {e}"));
        };
        match tls {
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
            | rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                ..
            }) => SinkError::refused(
                &self.name,
                format!(
                    "server certificate is not valid for the name {:?}: {tls} \
                 (set sni= to the name it has)",
                    self.server_name.to_str()
                ),
            ),
            rustls::Error::InvalidCertificate(ce) => SinkError::refused(
                &self.name,
                format!(
                    "server certificate not trusted by CA file {}: {}",
                    self.cfg.ca_file.display(),
                    cert_problem(ce)
                ),
            ),
            rustls::Error::AlertReceived(alert) if is_cert_alert(*alert) => SinkError::refused(
                &self.name,
                match &self.cfg.client_cert {
                    None => format!(
                        "server refused the connection with alert {alert:?}: it probably \
                         requires a client certificate (cert=FILE&key=FILE)"
                    ),
                    Some((cert, _)) => format!(
                        "server refused client certificate {} with alert {alert:?}",
                        cert.display()
                    ),
                },
            ),
            rustls::Error::AlertReceived(
                alert @ (AlertDescription::HandshakeFailure
                | AlertDescription::ProtocolVersion
                | AlertDescription::InsufficientSecurity),
            ) => SinkError::refused(
                &self.name,
                format!(
                    "server refused the TLS handshake with alert {alert:?} (no TLS 1.2/1.3 \
                 cipher suite or version in common?)"
                ),
            ),
            rustls::Error::PeerIncompatible(p) => {
                SinkError::refused(&self.name, format!("server TLS is incompatible: {p:?}"))
            }
            rustls::Error::NoCertificatesPresented => {
                SinkError::refused(&self.name, "server presented no certificate".to_string())
            }
            other => SinkError::unavailable(&self.name, format!("TLS handshake: {other}")),
        }
    }

    /// After a handshake in which the server asked for a client certificate, waits briefly
    /// for it to close the connection over that certificate (or its absence).
    fn await_client_auth_verdict(
        &self,
        stream: &mut TlsStream,
        deadline: Instant,
    ) -> Result<(), SinkError> {
        let until = Instant::now() + CLIENT_AUTH_VERDICT_WAIT.min(self.cfg.timeout);
        let until = until.min(deadline);
        let rejected = |detail: String| {
            SinkError::refused(
                &self.name,
                match &self.cfg.client_cert {
                    None => format!(
                        "server asked for a client certificate, none is configured \
                     (cert=FILE&key=FILE), and it {detail} right after the handshake"
                    ),
                    Some((cert, _)) => format!(
                        "server {detail} right after the handshake: it did not accept client \
                     certificate {}",
                        cert.display()
                    ),
                },
            )
        };
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            stream
                .sock
                .0
                .set_read_timeout(Some(left))
                .map_err(|e| SinkError::unavailable(&self.name, format!("socket: {e}")))?;
            match stream.conn.read_tls(&mut stream.sock) {
                Ok(0) => return Err(rejected("closed the connection".into())),
                Ok(_) => match stream.conn.process_new_packets() {
                    Ok(state) => {
                        if state.peer_has_closed() {
                            return Err(rejected("sent close_notify".into()));
                        }
                        discard_plaintext(&mut stream.conn, state.plaintext_bytes_to_read());
                    }
                    Err(rustls::Error::AlertReceived(alert)) => {
                        return Err(rejected(format!("sent alert {alert:?}")))
                    }
                    Err(e) => return Err(SinkError::unavailable(&self.name, format!("TLS: {e}"))),
                },
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(rejected(format!("dropped the connection ({e})"))),
            }
        }
    }

    /// Reads, without blocking, whatever the server sent since the last batch. `Err` says why
    /// the connection is no longer usable (close_notify, alert, EOF, reset).
    fn check_peer(stream: &mut TlsStream) -> Result<(), String> {
        stream
            .sock
            .0
            .set_nonblocking(true)
            .map_err(|e| format!("socket: {e}"))?;
        let verdict = loop {
            match stream.conn.read_tls(&mut stream.sock) {
                Ok(0) => break Err("server closed the connection".to_string()),
                Ok(_) => match stream.conn.process_new_packets() {
                    Ok(state) => {
                        if state.peer_has_closed() {
                            break Err("server closed the connection (close_notify)".into());
                        }
                        discard_plaintext(&mut stream.conn, state.plaintext_bytes_to_read());
                    }
                    Err(e) => break Err(format!("TLS error from the server: {e}")),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(format!("connection broken: {e}")),
            }
        };
        stream
            .sock
            .0
            .set_nonblocking(false)
            .map_err(|e| format!("socket: {e}"))?;
        verdict
    }

    /// Writes `data` through TLS to the socket, all of it, by `deadline`.
    fn write_all(stream: &mut TlsStream, mut data: &[u8], deadline: Instant) -> io::Result<()> {
        while !data.is_empty() {
            let n = stream.conn.writer().write(data)?;
            data = &data[n..];
            if n == 0 && !stream.conn.wants_write() {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "TLS connection takes no more data",
                ));
            }
            Self::drain(stream, deadline)?;
        }
        Self::drain(stream, deadline)
    }

    /// Writes out the TLS records rustls has buffered.
    fn drain(stream: &mut TlsStream, deadline: Instant) -> io::Result<()> {
        while stream.conn.wants_write() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the server took no data within the send timeout",
                ));
            }
            stream.sock.0.set_write_timeout(Some(left))?;
            match stream.conn.write_tls(&mut stream.sock) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "socket takes no more data",
                    ))
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the server took no data within the send timeout",
                    ))
                }
                Err(e) => return Err(e),
            }
        }
        stream.sock.flush()
    }

    /// After a broken connection was replaced: the frames the old one may have lost, again.
    fn resend_recent(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + self.cfg.timeout;
        let Some(stream) = self.stream.as_mut() else {
            return Err("not connected".into());
        };
        for chunk in &self.recent.chunks {
            Self::write_all(stream, chunk, deadline).map_err(|e| format!("write: {e}"))?;
        }
        tracing::info!(
            sink = %self.name,
            bytes = self.recent.bytes,
            "wrote the last frames again after a reconnect (the old connection may have lost them)"
        );
        Ok(())
    }

    fn send_batch(&mut self, events: &[EncodedEvent]) -> Result<(), String> {
        let deadline = Instant::now() + self.cfg.timeout;
        let Some(stream) = self.stream.as_mut() else {
            return Err("not connected".into());
        };
        Self::check_peer(stream)?;
        self.buf.clear();
        for ev in events {
            append_frame(
                &mut self.buf,
                &mut self.header,
                self.cfg.facility,
                &self.hostname,
                &self.procid,
                ev,
            );
            if self.buf.len() >= WRITE_CHUNK {
                Self::write_all(stream, &self.buf, deadline).map_err(|e| format!("write: {e}"))?;
                self.recent.remember(&self.buf, self.cfg.resend_bytes);
                self.buf.clear();
            }
        }
        Self::write_all(stream, &self.buf, deadline).map_err(|e| format!("write: {e}"))?;
        self.recent.remember(&self.buf, self.cfg.resend_bytes);
        self.buf.clear();
        if self.buf.capacity() > 4 * WRITE_CHUNK {
            // A huge event grew the buffer: give the memory back.
            self.buf.shrink_to(WRITE_CHUNK + 64 * 1024);
        }
        Ok(())
    }
}

fn cert_problem(e: &CertificateError) -> String {
    match e {
        CertificateError::UnknownIssuer => {
            "UnknownIssuer (it is not signed by a CA in that file)".into()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("certificate expired ({e})")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("certificate not valid yet ({e})")
        }
        _ => format!("{e:?}"),
    }
}

fn is_cert_alert(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied
            | AlertDescription::CertificateRequired
    )
}

/// Syslog receivers send no application data; whatever arrives is dropped.
fn discard_plaintext(conn: &mut ClientConnection, mut n: usize) {
    let mut scratch = [0u8; 4096];
    while n > 0 {
        match conn.reader().read(&mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(k) => n = n.saturating_sub(k),
        }
    }
}

impl Sink for SyslogTlsSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn connect(&mut self) -> Result<(), SinkError> {
        if let Some(old) = self.stream.take() {
            close_quietly(old);
        }
        let deadline = Instant::now() + self.cfg.timeout;
        let sock = self.tcp_connect(deadline)?;
        let setup = |sock: &TcpStream| -> io::Result<()> {
            sock.set_nodelay(true)?;
            let keepalive = socket2::TcpKeepalive::new()
                .with_time(KEEPALIVE_IDLE)
                .with_interval(KEEPALIVE_INTERVAL);
            socket2::SockRef::from(sock).set_tcp_keepalive(&keepalive)
        };
        setup(&sock)
            .map_err(|e| SinkError::unavailable(&self.name, format!("socket setup: {e}")))?;

        self.client_cert_asked.store(false, Ordering::Relaxed);
        let conn = ClientConnection::new(self.tls.clone(), self.server_name.clone())
            .map_err(|e| SinkError::refused(&self.name, format!("TLS setup: {e}")))?;
        let mut stream = StreamOwned::new(conn, Socket(sock));
        while stream.conn.is_handshaking() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SinkError::unavailable(
                    &self.name,
                    "TLS handshake timed out",
                ));
            }
            let timeouts = stream
                .sock
                .0
                .set_read_timeout(Some(left))
                .and_then(|()| stream.sock.0.set_write_timeout(Some(left)));
            timeouts.map_err(|e| SinkError::unavailable(&self.name, format!("socket: {e}")))?;
            match stream.conn.complete_io(&mut stream.sock) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(SinkError::unavailable(
                        &self.name,
                        "TLS handshake timed out",
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let err = self.classify(&e);
                    if matches!(err, SinkError::Refused { .. }) {
                        tracing::error!("{err}");
                    }
                    return Err(err);
                }
            }
        }
        if self.client_cert_asked.load(Ordering::Relaxed) {
            if let Err(err) = self.await_client_auth_verdict(&mut stream, deadline) {
                if matches!(err, SinkError::Refused { .. }) {
                    tracing::error!("{err}");
                }
                return Err(err);
            }
        }
        let _ = stream.sock.0.set_read_timeout(None);
        tracing::info!(
            sink = %self.name,
            version = ?stream.conn.protocol_version(),
            cipher = ?stream.conn.negotiated_cipher_suite().map(|s| s.suite()),
            client_cert = self.cfg.client_cert.is_some(),
            "connected"
        );
        self.stream = Some(stream);
        if self.resend_on_connect {
            if let Err(reason) = self.resend_recent() {
                if let Some(old) = self.stream.take() {
                    close_quietly(old);
                }
                return Err(SinkError::unavailable(&self.name, reason));
            }
            self.resend_on_connect = false;
        }
        Ok(())
    }

    fn send(&mut self, events: &[EncodedEvent]) -> Result<usize, SinkError> {
        if events.is_empty() {
            return Ok(0);
        }
        match self.send_batch(events) {
            Ok(()) => Ok(events.len()),
            Err(reason) => {
                self.resend_on_connect = !self.recent.chunks.is_empty();
                if let Some(old) = self.stream.take() {
                    close_quietly(old);
                    tracing::warn!(sink = %self.name, "connection lost: {reason}");
                }
                Err(SinkError::unavailable(&self.name, reason))
            }
        }
    }

    fn send_timeout(&self) -> Duration {
        self.cfg.timeout
    }
}

/// Sends close_notify if the socket takes it right away; never blocks.
fn close_quietly(mut stream: TlsStream) {
    stream.conn.send_close_notify();
    if stream.sock.0.set_nonblocking(true).is_ok() {
        let _ = stream.conn.write_tls(&mut stream.sock);
    }
}

impl Drop for SyslogTlsSink {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            close_quietly(stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event_type: EventType, ts_ns: u64, json: &str) -> EncodedEvent {
        EncodedEvent {
            id: "boot-000000000001".into(),
            event_type,
            ts_ns,
            json: json.as_bytes().to_vec(),
        }
    }

    #[test]
    fn frames() {
        let mut out = Vec::new();
        let mut h = String::new();
        let alert = ev(EventType::Alert, 1_715_594_400_123_456_789, r#"{"a":1}"#);
        append_frame(&mut out, &mut h, Facility::LOCAL5, "sensor1", "42", &alert);
        let msg = r#"<172>1 2024-05-13T10:00:00.123456Z sensor1 vigil 42 alert - {"a":1}"#;
        assert_eq!(out, format!("{} {msg}", msg.len()).as_bytes());

        out.clear();
        let flow = ev(EventType::Flow, 0, "{}");
        append_frame(
            &mut out,
            &mut h,
            Facility::parse("user").unwrap(),
            "h",
            "1",
            &flow,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "53 <13>1 1970-01-01T00:00:00.000000Z h vigil 1 flow - {}"
        );
    }

    #[test]
    fn frame_length_counts_octets() {
        let mut out = Vec::new();
        let mut h = String::new();
        let json = r#"{"host":"bücher.example"}"#;
        append_frame(
            &mut out,
            &mut h,
            Facility::LOCAL5,
            "s",
            "1",
            &ev(EventType::Http, 0, json),
        );
        let text = String::from_utf8(out).unwrap();
        let (len, msg) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len());
        assert!(msg.ends_with(json));
    }

    #[test]
    fn facilities() {
        assert_eq!(Facility::default().code(), 21);
        assert_eq!(Facility::parse("LOCAL0").unwrap().code(), 16);
        assert_eq!(Facility::parse("23").unwrap().name(), "local7");
        assert_eq!(Facility::parse("daemon").unwrap().code(), 3);
        assert!(Facility::parse("24").is_none());
        assert!(Facility::parse("local8").is_none());
        assert_eq!(pri(Facility::LOCAL5, EventType::Alert), 172);
        assert_eq!(pri(Facility::LOCAL5, EventType::Stats), 173);
    }

    #[test]
    fn urls() {
        let c = SyslogTlsConfig::from_url(
            "syslog+tls://siem.example:6514?ca=/etc/vigil/ca.pem&cert=/c.pem&key=/k.pem\
             &facility=local3&hostname=sensor-7&sni=logs.example&timeout=2.5",
        )
        .unwrap();
        assert_eq!(c.host, "siem.example");
        assert_eq!(c.port, 6514);
        assert_eq!(c.ca_file, PathBuf::from("/etc/vigil/ca.pem"));
        assert_eq!(
            c.client_cert,
            Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem")))
        );
        assert_eq!(c.facility.code(), 19);
        assert_eq!(c.hostname.as_deref(), Some("sensor-7"));
        assert_eq!(c.sni.as_deref(), Some("logs.example"));
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(c.name(), "syslog+tls://siem.example:6514");

        let c = SyslogTlsConfig::from_url("SYSLOG+TLS://[::1]:6514/?ca=/a%20b.pem").unwrap();
        assert_eq!(c.host, "::1");
        assert_eq!(c.ca_file, PathBuf::from("/a b.pem"));
        assert_eq!(c.facility, Facility::LOCAL5);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.name(), "syslog+tls://[::1]:6514");
    }

    #[test]
    fn bad_urls() {
        let err = |u: &str| SyslogTlsConfig::from_url(u).unwrap_err();
        assert!(err("syslog+tls://h?ca=x").contains("missing port"));
        assert!(err("syslog+tls://h:0?ca=x").contains("port"));
        assert!(err("syslog+tls://h:99999?ca=x").contains("port"));
        assert!(err("syslog+tls://h:6514").contains("ca=FILE is required"));
        assert!(err("syslog+tls://h:6514?ca=x&colour=red").contains("unknown parameter \"colour\""));
        assert!(err("syslog+tls://h:6514?ca=x&ca=y").contains("twice"));
        assert!(err("syslog+tls://h:6514?ca=x&cert=c").contains("needs key"));
        assert!(err("syslog+tls://h:6514?ca=x&key=k").contains("needs cert"));
        assert!(err("syslog+tls://h:6514?ca=x&facility=local9").contains("unknown facility"));
        assert!(err("syslog+tls://h:6514?ca=x&hostname=a%20b").contains("hostname"));
        assert!(err("syslog+tls://h:6514?ca=x&timeout=0").contains("timeout"));
        assert!(err("syslog+tls://h:6514?ca=x&timeout=abc").contains("timeout"));
        assert!(err("syslog+tls://h:6514?ca=%zz").contains("percent"));
        assert!(err("syslog+tls://h:6514?ca").contains("no value"));
        assert!(err("syslog+tls://h:6514?ca=").contains("empty"));
        assert!(err("syslog+tls://h:6514/path?ca=x").contains("no path"));
        assert!(err("syslog+tls://::1:6514?ca=x").contains("brackets"));
        assert!(err("syslog+tls://[::1?ca=x").contains("unclosed"));
        assert!(err("syslog+tls://:6514?ca=x").contains("missing host"));
        assert!(err("syslog://h:514").contains("not a syslog+tls"));
        assert!(err("").contains("not a syslog+tls"));
    }

    #[test]
    fn missing_files_are_named() {
        let c = SyslogTlsConfig::from_url("syslog+tls://127.0.0.1:6514?ca=/nonexistent/ca.pem")
            .unwrap();
        let e = SyslogTlsSink::new(c).err().unwrap();
        assert!(e.contains("CA file /nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = file("ca.pem", &ca_params.self_signed(&ca_key).unwrap().pem());
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["sensor".to_string()])
            .unwrap()
            .self_signed(&leaf_key)
            .unwrap();
        let cert = file("client.pem", &leaf.pem());
        let key = file("client.key", &leaf_key.serialize_pem());
        let other_key = file("other.key", &ca_key.serialize_pem());
        let empty = file("empty.pem", "");
        let garbage = file("garbage.pem", "-----BEGIN CERTIFICATE-----\n!!!\n");

        let new = |params: &str| {
            let url = format!("syslog+tls://127.0.0.1:6514?{params}");
            SyslogTlsSink::new(SyslogTlsConfig::from_url(&url).unwrap())
        };
        assert!(new(&format!("ca={ca}&cert={cert}&key={key}")).is_ok());
        let err = |params: String| new(&params).err().unwrap();
        let e = err(format!("ca={empty}"));
        assert!(e.contains(&empty) && e.contains("no CERTIFICATE"), "{e}");
        let e = err(format!("ca={garbage}"));
        assert!(e.contains(&garbage) && e.contains("bad PEM"), "{e}");
        let e = err(format!("ca={ca}&cert={cert}&key={empty}"));
        assert!(e.contains(&empty) && e.contains("private key"), "{e}");
        let e = err(format!("ca={ca}&cert={cert}&key=/nonexistent/k.pem"));
        assert!(e.contains("/nonexistent/k.pem"), "{e}");
        let e = err(format!("ca={ca}&cert={cert}&key={other_key}"));
        assert!(e.contains("do not go together"), "{e}");
        let e = err(format!("ca={ca}&cert={key}&key={key}"));
        assert!(e.contains("no CERTIFICATE"), "{e}");
    }

    #[test]
    fn system_hostname_is_a_valid_field() {
        let h = system_hostname();
        assert!(check_header_field("hostname", &h, 255).is_ok() || h == "-");
    }
}
