//! The NATS JetStream sink: events published to a JetStream stream, one subject per sensor
//! and event type, de-duplicated by the stream on redelivery.
//!
//! Configured from a URL, as the CLI takes it:
//!
//! ```text
//! nats://HOST:PORT/SUBJECT_PREFIX?stream=NAME&creds=FILE&ca=FILE&sensor=NAME&subject=TEMPLATE
//! ```
//!
//! | parameter | meaning | default |
//! | --- | --- | --- |
//! | path | subject prefix, one or more dot-separated tokens | `vigil` |
//! | `stream=` | JetStream stream taking the events | `VIGIL` |
//! | `sensor=` | sensor name in the subject (one subject token) | the hostname, dots as `_` |
//! | `subject=` | subject template over `{prefix}`, `{sensor}`, `{event_type}` | `{prefix}.{sensor}.{event_type}` |
//! | `dupe_window=` | duplicate window of a stream the sink creates (`90s`, `2m`, `1h`) | `2m` |
//! | `timeout=` | longest one `send` blocks | `10s` |
//! | `connect_timeout=` | longest the TCP, TLS and authentication steps of `connect` take | `5s` |
//! | `creds=FILE` | JWT + NKey credentials file (decentralized auth) | |
//! | `nkey=FILE` | file holding a user NKey seed (`SU…`) | |
//! | `user=`, `password=` | user and password; less safe: the password sits in the sensor's configuration and command line | |
//! | `token=` | authentication token; as exposed as a password | |
//! | `ca=FILE` | PEM CA bundle the server certificate is verified against; implies `tls=true` | system roots |
//! | `cert=FILE`, `key=FILE` | client certificate and key (PEM) for servers that verify clients; imply `tls=true` | |
//! | `tls=true` | refuse a connection without TLS (also the `tls://` scheme) | `false` |
//!
//! If the stream does not exist, the sink creates it with the subjects `{prefix}.>`, file
//! storage, the duplicate window and no limits (retention is the operator's to set, e.g.
//! `nats stream edit VIGIL --max-bytes 50GB`). An existing stream is used as it is, after
//! checking that it takes every subject the sink publishes on.
//!
//! Every event is published with `Nats-Msg-Id` set to its [`EncodedEvent::id`]: the stream
//! drops a redelivered event (same id) within its duplicate window, so the caller's
//! at-least-once resending becomes effectively-once. A batch is pipelined: every publish is
//! written, then the acknowledgements are awaited in order.
//!
//! The sink runs on its caller's thread and owns a current-thread tokio runtime, rebuilt on
//! every `connect` (which drops the previous connection and anything still pending on it).
//! That thread must not be inside another tokio runtime (`block_on` would refuse).
//! async-nats makes at most one immediate reconnect attempt of its own after a disconnect;
//! beyond that, reconnecting is the caller's job (`connect` again, with its backoff), and a
//! send on a lost connection fails at once rather than waiting for acknowledgements that will
//! not come. Between sends nothing drives the connection, so a server may drop a sink idle for
//! minutes as stale (unanswered PINGs); the next send first lets the client read that and make
//! its one reconnect attempt, then publishes on the new connection.

use std::fmt;
use std::future::IntoFuture;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::{PublishErrorKind, RequestErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{
    Config as StreamConfig, DiscardPolicy, RetentionPolicy, StorageType,
};
use async_nats::jetstream::{self, ErrorCode};
use async_nats::rustls;
use async_nats::rustls::pki_types::pem::PemObject;
use async_nats::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use async_nats::{ConnectErrorKind, ConnectOptions, Event, Subject};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio::time::Instant;

use super::sink::{EncodedEvent, EventType, Sink, SinkError};

pub const DEFAULT_PORT: u16 = 4222;
pub const DEFAULT_PREFIX: &str = "vigil";
pub const DEFAULT_STREAM: &str = "VIGIL";
pub const DEFAULT_SUBJECT_TEMPLATE: &str = "{prefix}.{sensor}.{event_type}";
pub const DEFAULT_DUPE_WINDOW: Duration = Duration::from_secs(120);
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Publishes in flight (written, not yet acknowledged) at most; a larger batch goes in windows.
const PUBLISH_WINDOW: usize = 1024;
/// After a disconnect in the middle of a send, how long acknowledgements still pending may
/// take on the new connection (async-nats's single reconnect attempt) before the send gives up
/// on them: those published before the disconnect will never be acknowledged.
const RECONNECT_GRACE: Duration = Duration::from_secs(1);

/// How the sink authenticates. `Debug` never shows a password or token.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum NatsAuth {
    #[default]
    None,
    /// JWT + NKey credentials file (`nsc generate creds`), re-read on every connect.
    Creds(PathBuf),
    /// A file holding the user's NKey seed (`SU…`), re-read on every connect.
    NKey(PathBuf),
    /// Less safe: the password is in the sink URL, so in the configuration and command line.
    UserPassword {
        user: String,
        password: String,
    },
    Token(String),
}

impl fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatsAuth::None => f.write_str("None"),
            NatsAuth::Creds(path) => f.debug_tuple("Creds").field(path).finish(),
            NatsAuth::NKey(path) => f.debug_tuple("NKey").field(path).finish(),
            NatsAuth::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
            NatsAuth::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

/// TLS settings. Files are re-read on every connect, so renewed certificates are picked up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NatsTls {
    /// CA bundle the server certificate must chain to; the system roots when `None`.
    pub ca: Option<PathBuf>,
    /// Client certificate chain and key, for servers that verify clients.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Refuse to talk without TLS. Without it, TLS is still used when the server asks for it.
    pub required: bool,
}

/// Everything the sink needs, parsed from its URL by [`NatsConfig::from_url`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    pub host: String,
    pub port: u16,
    /// Subject prefix: the URL path, dot-separated subject tokens.
    pub prefix: String,
    pub stream: String,
    /// One subject token naming this sensor.
    pub sensor: String,
    /// Subject template over `{prefix}`, `{sensor}` and `{event_type}`.
    pub subject_template: String,
    /// Duplicate window of a stream the sink creates; an existing stream keeps its own.
    pub dupe_window: Duration,
    pub send_timeout: Duration,
    pub connect_timeout: Duration,
    pub auth: NatsAuth,
    pub tls: NatsTls,
}

impl NatsConfig {
    /// A configuration with the defaults for a server and subject prefix.
    pub fn new(host: &str, port: u16, prefix: &str) -> NatsConfig {
        NatsConfig {
            host: host.to_string(),
            port,
            prefix: prefix.to_string(),
            stream: DEFAULT_STREAM.to_string(),
            sensor: default_sensor_name(),
            subject_template: DEFAULT_SUBJECT_TEMPLATE.to_string(),
            dupe_window: DEFAULT_DUPE_WINDOW,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            auth: NatsAuth::None,
            tls: NatsTls::default(),
        }
    }

    /// Parses `nats://HOST:PORT/SUBJECT_PREFIX?param=value&…` (see the module documentation).
    /// The scheme `tls://` requires TLS. Files named are checked to be readable here; their
    /// contents are checked by [`NatsSink::new`].
    pub fn from_url(s: &str) -> Result<NatsConfig, String> {
        let url = url::Url::parse(s).map_err(|e| format!("invalid NATS URL {s:?}: {e}"))?;
        let tls_scheme = match url.scheme() {
            "nats" => false,
            "tls" => true,
            other => {
                return Err(format!(
                    "unsupported scheme {other:?} in NATS URL {s:?}: use nats:// or tls://"
                ))
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "NATS URL {s:?}: put credentials in parameters (creds=FILE, nkey=FILE, \
                 user=…&password=…, token=…), not before the host"
            ));
        }
        if url.fragment().is_some() {
            return Err(format!("NATS URL {s:?}: unexpected '#' fragment"));
        }
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.to_string(),
            _ => return Err(format!("NATS URL {s:?} names no host")),
        };
        let port = url.port().unwrap_or(DEFAULT_PORT);
        let path = url.path().trim_start_matches('/');
        let prefix = if path.is_empty() {
            DEFAULT_PREFIX.to_string()
        } else {
            let decoded = percent_decode(path)
                .ok_or_else(|| format!("NATS URL {s:?}: the subject prefix is not UTF-8"))?;
            if decoded.contains('/') {
                return Err(format!(
                    "NATS URL {s:?}: the subject prefix {decoded:?} has a '/'; separate subject \
                     tokens with dots (nats://host/org.vigil)"
                ));
            }
            check_subject(&decoded, false)
                .map_err(|e| format!("NATS URL {s:?}: subject prefix {decoded:?} {e}"))?;
            decoded
        };

        let mut cfg = NatsConfig::new(&host, port, &prefix);
        cfg.tls.required = tls_scheme;
        let mut seen: Vec<String> = Vec::new();
        let (mut user, mut password, mut tls_param) = (None, None, None);
        let mut auths: Vec<(&'static str, NatsAuth)> = Vec::new();
        for (key, value) in url.query_pairs() {
            let key = key.into_owned();
            let value = value.into_owned();
            if seen.contains(&key) {
                return Err(format!("NATS URL: parameter {key}= given twice"));
            }
            seen.push(key.clone());
            if value.is_empty() {
                return Err(format!("NATS URL: parameter {key}= has no value"));
            }
            match key.as_str() {
                "stream" => {
                    check_stream_name(&value)?;
                    cfg.stream = value;
                }
                "sensor" => {
                    check_subject(&value, false)
                        .and_then(|()| {
                            if value.contains('.') {
                                Err("must be one subject token (no dots)".to_string())
                            } else {
                                Ok(())
                            }
                        })
                        .map_err(|e| format!("NATS URL: sensor={value:?} {e}"))?;
                    cfg.sensor = value;
                }
                "subject" => {
                    parse_template(&value)?;
                    cfg.subject_template = value;
                }
                "dupe_window" => cfg.dupe_window = parse_duration("dupe_window", &value)?,
                "timeout" => cfg.send_timeout = parse_duration("timeout", &value)?,
                "connect_timeout" => {
                    cfg.connect_timeout = parse_duration("connect_timeout", &value)?
                }
                "creds" => {
                    check_readable("creds", &value)?;
                    auths.push(("creds", NatsAuth::Creds(PathBuf::from(value))));
                }
                "nkey" => {
                    check_readable("nkey", &value)?;
                    auths.push(("nkey", NatsAuth::NKey(PathBuf::from(value))));
                }
                "token" => auths.push(("token", NatsAuth::Token(value))),
                "user" => user = Some(value),
                "password" => password = Some(value),
                "ca" => {
                    check_readable("ca", &value)?;
                    cfg.tls.ca = Some(PathBuf::from(value));
                }
                "cert" => {
                    check_readable("cert", &value)?;
                    cfg.tls.cert = Some(PathBuf::from(value));
                }
                "key" => {
                    check_readable("key", &value)?;
                    cfg.tls.key = Some(PathBuf::from(value));
                }
                "tls" => {
                    tls_param = Some(match value.as_str() {
                        "true" | "yes" | "1" => true,
                        "false" | "no" | "0" => false,
                        _ => return Err(format!("NATS URL: tls={value:?}: use true or false")),
                    })
                }
                _ => {
                    return Err(format!(
                        "NATS URL: unknown parameter {key}= (known: stream, sensor, subject, \
                         dupe_window, timeout, connect_timeout, creds, nkey, user, password, \
                         token, ca, cert, key, tls)"
                    ))
                }
            }
        }
        match (user, password) {
            (Some(user), Some(password)) => {
                auths.push(("user/password", NatsAuth::UserPassword { user, password }))
            }
            (Some(_), None) => return Err("NATS URL: user= needs password=".to_string()),
            (None, Some(_)) => return Err("NATS URL: password= needs user=".to_string()),
            (None, None) => {}
        }
        if auths.len() > 1 {
            let names: Vec<&str> = auths.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "NATS URL: give one way to authenticate, not {}",
                names.join(" and ")
            ));
        }
        if let Some((_, auth)) = auths.pop() {
            cfg.auth = auth;
        }
        if cfg.tls.cert.is_some() != cfg.tls.key.is_some() {
            return Err("NATS URL: cert= and key= go together".to_string());
        }
        let tls_files = cfg.tls.ca.is_some() || cfg.tls.cert.is_some();
        match tls_param {
            Some(false) if tls_scheme => {
                return Err("NATS URL: tls=false contradicts the tls:// scheme".to_string())
            }
            // A CA with a plaintext fallback would let anyone on the path downgrade the link.
            Some(false) if tls_files => {
                return Err(
                    "NATS URL: tls=false with ca=, cert= or key=: TLS files imply TLS; \
                            drop them or tls=false"
                        .to_string(),
                )
            }
            Some(required) => cfg.tls.required = required || tls_scheme,
            None => cfg.tls.required = tls_scheme || tls_files,
        }
        Ok(cfg)
    }

    /// `nats://host:port/prefix`: how logs and metrics name the sink (no parameters, no secrets).
    pub fn display_name(&self) -> String {
        let scheme = if self.tls.required { "tls" } else { "nats" };
        format!("{scheme}://{}:{}/{}", self.host, self.port, self.prefix)
    }

    /// The subject events of a type are published on.
    pub fn subject_for(&self, event_type: EventType) -> Result<String, String> {
        let parts = parse_template(&self.subject_template)?;
        let subject = render_template(&parts, &self.prefix, &self.sensor, event_type);
        check_subject(&subject, false).map_err(|e| {
            format!(
                "subject template {:?} gives {subject:?}, which {e}",
                self.subject_template
            )
        })?;
        Ok(subject)
    }
}

/// The hostname as a subject token (dots and other characters a subject token cannot hold
/// become `_`), or `sensor` when it cannot be read.
pub fn default_sensor_name() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let token: String = host
        .trim()
        .chars()
        .map(|c| {
            if c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if token.is_empty() {
        "sensor".to_string()
    } else {
        token
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplatePart {
    Literal(String),
    Prefix,
    Sensor,
    EventType,
}

fn parse_template(template: &str) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        match c {
            '{' => {
                let end = rest.find('}').ok_or_else(|| {
                    format!("subject template {template:?}: '{{' without a closing '}}'")
                })?;
                let name = &rest[1..end];
                let part = match name {
                    "prefix" => TemplatePart::Prefix,
                    "sensor" => TemplatePart::Sensor,
                    "event_type" => TemplatePart::EventType,
                    _ => {
                        return Err(format!(
                            "subject template {template:?}: unknown placeholder {{{name}}} \
                             (known: {{prefix}}, {{sensor}}, {{event_type}})"
                        ))
                    }
                };
                if !literal.is_empty() {
                    parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
                }
                parts.push(part);
                rest = &rest[end + 1..];
            }
            '}' => {
                return Err(format!(
                    "subject template {template:?}: '}}' without an opening '{{'"
                ))
            }
            _ => {
                literal.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if !literal.is_empty() {
        parts.push(TemplatePart::Literal(literal));
    }
    // What the placeholders hold is checked already, so checking the literal parts with
    // stand-ins catches an empty token, a wildcard or a space in the template itself.
    let sample = render_template(&parts, "p", "s", EventType::Alert);
    check_subject(&sample, false)
        .map_err(|e| format!("subject template {template:?}: the subject {e}"))?;
    Ok(parts)
}

fn render_template(
    parts: &[TemplatePart],
    prefix: &str,
    sensor: &str,
    event_type: EventType,
) -> String {
    let mut out = String::new();
    for part in parts {
        match part {
            TemplatePart::Literal(s) => out.push_str(s),
            TemplatePart::Prefix => out.push_str(prefix),
            TemplatePart::Sensor => out.push_str(sensor),
            TemplatePart::EventType => out.push_str(event_type.name()),
        }
    }
    out
}

/// A subject to publish on (`wildcards == false`) or a stream's subject filter.
fn check_subject(subject: &str, wildcards: bool) -> Result<(), String> {
    if subject.is_empty() {
        return Err("is empty".to_string());
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return Err("has an empty token (leading, trailing or double dot)".to_string());
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("has a space or control character".to_string());
        }
        let wildcard = *token == "*" || (*token == ">" && i + 1 == tokens.len());
        if token.contains(['*', '>']) && !(wildcards && wildcard) {
            return Err("has a wildcard ('*' or '>')".to_string());
        }
    }
    Ok(())
}

fn check_stream_name(name: &str) -> Result<(), String> {
    if name.len() > 255
        || name.chars().any(|c| {
            matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace() || c.is_control()
        })
    {
        return Err(format!(
            "NATS URL: stream={name:?} is not a valid stream name (no '.', '*', '>', '/', '\\' \
             or spaces, at most 255 characters)"
        ));
    }
    Ok(())
}

/// Whether a stream subject filter (with `*` and `>` wildcards) takes `subject`.
fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for f in filter.split('.') {
        if f == ">" {
            return subject_tokens.next().is_some();
        }
        match subject_tokens.next() {
            Some(s) if f == "*" || f == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

fn parse_duration(param: &str, value: &str) -> Result<Duration, String> {
    let bad = || format!("NATS URL: {param}={value:?} is not a duration (e.g. 500ms, 30s, 2m, 1h)");
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(bad()),
    };
    if d.is_zero() {
        return Err(format!("NATS URL: {param}= must be more than zero"));
    }
    Ok(d)
}

fn check_readable(param: &str, path: &str) -> Result<(), String> {
    std::fs::File::open(path)
        .map(|_| ())
        .map_err(|e| format!("NATS URL: {param}={path}: cannot read the file: {e}"))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The credentials to present, read from their files at each connect.
enum LoadedAuth {
    None,
    Creds(String),
    NKey(String),
    UserPassword(String, String),
    Token(String),
}

fn load_auth(auth: &NatsAuth) -> Result<LoadedAuth, String> {
    Ok(match auth {
        NatsAuth::None => LoadedAuth::None,
        NatsAuth::Creds(path) => {
            let text = read_text("creds", path)?;
            // Parse once here so a malformed file is named, not reported as a failed login.
            ConnectOptions::new()
                .credentials(&text)
                .map_err(|e| format!("creds file {}: {e}", path.display()))?;
            LoadedAuth::Creds(text)
        }
        NatsAuth::NKey(path) => {
            let text = read_text("nkey", path)?;
            let seed = text
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("SU"))
                .ok_or_else(|| {
                    format!(
                        "nkey file {}: no user NKey seed (a line starting with SU) in it",
                        path.display()
                    )
                })?;
            LoadedAuth::NKey(seed.to_string())
        }
        NatsAuth::UserPassword { user, password } => {
            LoadedAuth::UserPassword(user.clone(), password.clone())
        }
        NatsAuth::Token(token) => LoadedAuth::Token(token.clone()),
    })
}

fn read_text(what: &str, path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("{what} file {}: cannot read: {e}", path.display()))
}

/// The rustls configuration, built here rather than by async-nats so that the crypto provider
/// is chosen explicitly (ring) whatever else in the program enables rustls.
fn load_tls(tls: &NatsTls) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca {
        Some(ca) => {
            let certs = CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("ca file {}: {e}", ca.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("ca file {}: {e}", ca.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "ca file {}: no PEM certificate in it",
                    ca.display()
                ));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("ca file {}: {e}", ca.display()))?;
            }
        }
        None => {
            // Only needed when the server speaks TLS; a missing store shows up then as an
            // unknown issuer.
            if let Ok(certs) = rustls_native_certs::load_native_certs() {
                roots.add_parsable_certificates(certs);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots);
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| format!("cert file {}: {e}", cert.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("cert file {}: {e}", cert.display()))?;
            if chain.is_empty() {
                return Err(format!(
                    "cert file {}: no PEM certificate in it",
                    cert.display()
                ));
            }
            let key_der = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("key file {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| format!("cert {} / key {}: {e}", cert.display(), key.display()))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err("cert= and key= go together".to_string()),
    }
}

/// An open connection: the client lives on `runtime`, dropped last so that its tasks and
/// sockets go with it.
struct Connection {
    js: jetstream::Context,
    /// Counts disconnects reported by async-nats.
    disconnects: watch::Receiver<u64>,
    runtime: Runtime,
}

/// Publishes events to a JetStream stream. See the module documentation.
pub struct NatsSink {
    cfg: NatsConfig,
    name: String,
    /// The subject of each event type, indexed by `EventType as usize`.
    subjects: Vec<Subject>,
    conn: Option<Connection>,
}

impl NatsSink {
    /// Checks the configuration (subjects, credential and TLS files) without connecting.
    pub fn new(cfg: NatsConfig) -> Result<NatsSink, String> {
        check_stream_name(&cfg.stream)?;
        if cfg.stream.is_empty() {
            return Err("NATS: empty stream name".to_string());
        }
        check_subject(&cfg.prefix, false).map_err(|e| format!("NATS subject prefix {e}"))?;
        let mut subjects = Vec::with_capacity(EventType::ALL.len());
        for (i, t) in EventType::ALL.into_iter().enumerate() {
            if t as usize != i {
                return Err(format!(
                    "NATS: EventType::ALL is not in declaration order at {t:?}"
                ));
            }
            subjects.push(Subject::from(cfg.subject_for(t)?));
        }
        load_auth(&cfg.auth)?;
        load_tls(&cfg.tls)?;
        // NKey and JWT logins sign a nonce; a password or token itself crosses the network.
        let secret_in_clear =
            matches!(cfg.auth, NatsAuth::UserPassword { .. } | NatsAuth::Token(_));
        if secret_in_clear && !cfg.tls.required {
            tracing::warn!(
                sink = %cfg.display_name(),
                "NATS password or token without tls=true: it crosses the network in the clear \
                 unless the server asks for TLS"
            );
        }
        Ok(NatsSink {
            name: cfg.display_name(),
            cfg,
            subjects,
            conn: None,
        })
    }

    pub fn config(&self) -> &NatsConfig {
        &self.cfg
    }

    fn connect_options(&self, disconnects: watch::Sender<u64>) -> Result<ConnectOptions, String> {
        let mut options = match load_auth(&self.cfg.auth)? {
            LoadedAuth::None => ConnectOptions::new(),
            LoadedAuth::Creds(text) => ConnectOptions::new()
                .credentials(&text)
                .map_err(|e| format!("creds file: {e}"))?,
            LoadedAuth::NKey(seed) => ConnectOptions::new().nkey(seed),
            LoadedAuth::UserPassword(user, password) => {
                ConnectOptions::new().user_and_password(user, password)
            }
            LoadedAuth::Token(token) => ConnectOptions::new().token(token),
        };
        options = options
            .tls_client_config(load_tls(&self.cfg.tls)?)
            .require_tls(self.cfg.tls.required)
            .name(format!("vigil {}", self.cfg.sensor))
            .connection_timeout(self.cfg.connect_timeout)
            .request_timeout(Some(self.cfg.send_timeout))
            // One immediate attempt after a disconnect; then the client closes and pending
            // publishes fail at once, and the caller reconnects with its own backoff.
            .max_reconnects(1)
            .reconnect_delay_callback(|_| Duration::ZERO)
            .ignore_discovered_servers()
            // Publish-only: the server needs not send our own messages back.
            .no_echo();
        let sink = self.name.clone();
        let disconnects = Arc::new(disconnects);
        options = options.event_callback(move |event| {
            let disconnects = Arc::clone(&disconnects);
            let sink = sink.clone();
            async move {
                match event {
                    Event::Disconnected => {
                        disconnects.send_modify(|n| *n += 1);
                        tracing::warn!(sink = %sink, "NATS connection lost");
                    }
                    Event::Connected => tracing::debug!(sink = %sink, "NATS connected"),
                    Event::LameDuckMode => tracing::warn!(
                        sink = %sink,
                        "NATS server entering lame duck mode (shutting down)"
                    ),
                    Event::ServerError(e) => {
                        tracing::warn!(sink = %sink, error = %e, "NATS server error")
                    }
                    Event::ClientError(e) => {
                        tracing::warn!(sink = %sink, error = %e, "NATS client error")
                    }
                    other => tracing::debug!(sink = %sink, event = %other, "NATS event"),
                }
            }
        });
        Ok(options)
    }

    fn server_url(&self) -> String {
        let host = if self.cfg.host.contains(':') && !self.cfg.host.starts_with('[') {
            format!("[{}]", self.cfg.host)
        } else {
            self.cfg.host.clone()
        };
        let scheme = if self.cfg.tls.required { "tls" } else { "nats" };
        format!("{scheme}://{host}:{}", self.cfg.port)
    }
}

/// Why connecting failed: `Refused` will not heal by retrying soon.
enum ConnectFailure {
    Refused(String),
    Unavailable(String),
}

fn classify_connect_error(err: &async_nats::ConnectError) -> ConnectFailure {
    let reason = err.to_string();
    match err.kind() {
        ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
            ConnectFailure::Refused(format!("authentication failed: {reason}"))
        }
        ConnectErrorKind::Tls => ConnectFailure::Refused(format!("TLS: {reason}")),
        ConnectErrorKind::ServerParse => ConnectFailure::Refused(reason),
        _ if chain_has_tls_error(err) => ConnectFailure::Refused(format!("TLS: {reason}")),
        _ => {
            let lower = reason.to_ascii_lowercase();
            if lower.contains("authorization") || lower.contains("authentication") {
                ConnectFailure::Refused(format!("authentication failed: {reason}"))
            } else if lower.contains("tls required") || lower.contains("secure connection") {
                ConnectFailure::Refused(format!("TLS: {reason}"))
            } else {
                ConnectFailure::Unavailable(reason)
            }
        }
    }
}

/// Whether a rustls error (certificate, handshake) is behind `err`. rustls errors reach
/// async-nats wrapped in `io::Error`, whose `source()` skips the wrapped error itself.
fn chain_has_tls_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if inner.downcast_ref::<rustls::Error>().is_some() {
                    return true;
                }
            }
        }
        cur = e.source();
    }
    false
}

fn request_error_kind(err: &(dyn std::error::Error + 'static)) -> Option<RequestErrorKind> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<jetstream::context::RequestError>() {
            return Some(r.kind());
        }
        cur = e.source();
    }
    None
}

/// Finds the stream, or creates it; checks that it takes every subject in `subjects`.
async fn ensure_stream(
    js: &jetstream::Context,
    cfg: &NatsConfig,
    subjects: &[Subject],
) -> Result<(), ConnectFailure> {
    let no_jetstream = || {
        ConnectFailure::Refused(
            "JetStream is not enabled on the server or for this account (no responders to \
             the JetStream API)"
                .to_string(),
        )
    };
    let info = match js.get_stream(&cfg.stream).await {
        Ok(stream) => {
            tracing::debug!(stream = %cfg.stream, "NATS stream exists");
            stream.cached_info().clone()
        }
        Err(e) => match e.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(je)
                if je.error_code() == ErrorCode::STREAM_NOT_FOUND =>
            {
                create_stream(js, cfg).await?
            }
            jetstream::context::GetStreamErrorKind::JetStream(je) => {
                return Err(ConnectFailure::Refused(format!(
                    "cannot look up stream {}: {je}",
                    cfg.stream
                )))
            }
            _ => {
                return Err(match request_error_kind(&e) {
                    Some(RequestErrorKind::NoResponders) => no_jetstream(),
                    _ => ConnectFailure::Unavailable(format!(
                        "cannot look up stream {}: {e}",
                        cfg.stream
                    )),
                })
            }
        },
    };
    let filters = &info.config.subjects;
    let uncovered: Vec<&str> = subjects
        .iter()
        .filter(|s| !filters.iter().any(|f| subject_matches(f, s)))
        .map(Subject::as_str)
        .collect();
    if !uncovered.is_empty() {
        return Err(ConnectFailure::Refused(format!(
            "stream {} takes the subjects {:?}, not {}: add {}.> to the stream's subjects \
             (nats stream edit {} --subjects …) or pick another stream= or subject=",
            cfg.stream,
            filters,
            uncovered.join(", "),
            cfg.prefix,
            cfg.stream
        )));
    }
    if info.config.duplicate_window.is_zero() {
        tracing::warn!(
            stream = %cfg.stream,
            "NATS stream has no duplicate window: redelivered events will be stored twice"
        );
    }
    Ok(())
}

async fn create_stream(
    js: &jetstream::Context,
    cfg: &NatsConfig,
) -> Result<jetstream::stream::Info, ConnectFailure> {
    let config = StreamConfig {
        name: cfg.stream.clone(),
        description: Some("Vigil sensor events".to_string()),
        subjects: vec![format!("{}.>", cfg.prefix)],
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        duplicate_window: cfg.dupe_window,
        // No limits: retention is the operator's to set on the stream.
        max_messages: -1,
        max_bytes: -1,
        max_messages_per_subject: -1,
        max_consumers: -1,
        num_replicas: 1,
        ..Default::default()
    };
    match js.create_stream(config).await {
        Ok(stream) => {
            tracing::info!(
                stream = %cfg.stream,
                subjects = %format!("{}.>", cfg.prefix),
                dupe_window_s = cfg.dupe_window.as_secs(),
                "created NATS JetStream stream (file storage, no limits: set them on the stream)"
            );
            Ok(stream.cached_info().clone())
        }
        Err(e) => {
            use jetstream::context::CreateStreamErrorKind as K;
            match e.kind() {
                // Another sensor created it in the meantime.
                K::JetStream(je) if je.error_code() == ErrorCode::STREAM_NAME_EXIST => js
                    .get_stream(&cfg.stream)
                    .await
                    .map(|s| s.cached_info().clone())
                    .map_err(|e| {
                        ConnectFailure::Unavailable(format!(
                            "cannot look up stream {}: {e}",
                            cfg.stream
                        ))
                    }),
                K::JetStream(je) if je.error_code() == ErrorCode::STREAM_SUBJECT_OVERLAP => {
                    Err(ConnectFailure::Refused(format!(
                        "cannot create stream {} on {}.>: another stream already takes some of \
                         these subjects ({je}); name that stream with stream=",
                        cfg.stream, cfg.prefix
                    )))
                }
                K::JetStream(je) => Err(ConnectFailure::Refused(format!(
                    "cannot create stream {}: {je}",
                    cfg.stream
                ))),
                K::JetStreamUnavailable => Err(ConnectFailure::Refused(
                    "JetStream is not enabled on the server or for this account".to_string(),
                )),
                _ => Err(ConnectFailure::Unavailable(format!(
                    "cannot create stream {}: {e}",
                    cfg.stream
                ))),
            }
        }
    }
}

/// Why a batch stopped short.
enum Stop {
    /// The connection or the server failed: reconnect and send again.
    Failed(String),
    /// The next event can never be published (over the server's max_payload).
    Rejected(String),
}

/// Publishes `events` pipelined and returns how many leading ones were acknowledged, with the
/// reason it stopped short.
async fn publish_batch(
    js: &jetstream::Context,
    stream: &str,
    subjects: &[Subject],
    events: &[EncodedEvent],
    timeout: Duration,
    disconnects: &mut watch::Receiver<u64>,
) -> (usize, Option<Stop>) {
    let mut deadline = Instant::now() + timeout;
    disconnects.borrow_and_update();
    // Nothing ran the connection since the last send: let it read what arrived meanwhile (a
    // server that dropped an idle connection) and reconnect before the publishes are queued,
    // instead of writing them into a dead socket.
    tokio::task::yield_now().await;
    // A message over the server's max_payload makes the server close the connection; say why
    // instead (the headers take about 100 bytes more).
    let max_payload = js.client().server_info().max_payload;
    let mut watching = true;
    let mut lost = false;
    let mut acked = 0usize;
    let mut duplicates = 0usize;
    // A sliding window: publishes stay written ahead of the acknowledgement being awaited, so
    // the server always has work queued.
    let mut in_flight = std::collections::VecDeque::with_capacity(PUBLISH_WINDOW);
    let mut next = 0usize;
    let mut publish_failure = None;
    loop {
        while publish_failure.is_none() && next < events.len() && in_flight.len() < PUBLISH_WINDOW {
            let ev = &events[next];
            let size = ev.json.len() + ev.id.len() + stream.len() + 64;
            if max_payload > 0 && size > max_payload {
                publish_failure = Some(Stop::Rejected(format!(
                    "event {} is {} bytes, over the server's max_payload of {max_payload} \
                     bytes: raise max_payload on the server",
                    ev.id,
                    ev.json.len()
                )));
                break;
            }
            let Some(subject) = subjects.get(ev.event_type as usize).cloned() else {
                publish_failure = Some(Stop::Failed(format!("no subject for {:?}", ev.event_type)));
                break;
            };
            let message = PublishMessage::build()
                .payload(ev.json.clone().into())
                .message_id(&ev.id)
                .expected_stream(stream);
            match tokio::time::timeout_at(deadline, js.send_publish(subject, message)).await {
                Ok(Ok(ack)) => {
                    in_flight.push_back(ack.into_future());
                    next += 1;
                }
                Ok(Err(e)) => publish_failure = Some(Stop::Failed(format!("publish failed: {e}"))),
                Err(_) => {
                    publish_failure = Some(Stop::Failed("timed out writing publishes".to_string()))
                }
            }
        }
        let Some(mut ack) = in_flight.pop_front() else {
            break;
        };
        let result = loop {
            tokio::select! {
                biased;
                r = &mut ack => break Ok(r),
                () = tokio::time::sleep_until(deadline) => break Err(()),
                changed = disconnects.changed(), if watching => {
                    if changed.is_err() {
                        watching = false;
                    } else {
                        lost = true;
                        deadline = deadline.min(Instant::now() + RECONNECT_GRACE);
                    }
                }
            }
        };
        match result {
            Ok(Ok(ack)) => {
                if ack.duplicate {
                    duplicates += 1;
                }
                acked += 1;
                if !lost {
                    // The timeout is for a stalled server, not for a long batch.
                    deadline = Instant::now() + timeout;
                }
            }
            Ok(Err(e)) => {
                let reason = match e.kind() {
                    PublishErrorKind::StreamNotFound => format!(
                        "no stream takes {} events any more (stream {stream} deleted or \
                         changed?): {e}",
                        events.get(acked).map_or("?", |ev| ev.event_type.name())
                    ),
                    PublishErrorKind::BrokenPipe => "connection closed".to_string(),
                    _ => format!("not acknowledged: {e}"),
                };
                return (acked, Some(Stop::Failed(reason)));
            }
            Err(()) => {
                return (
                    acked,
                    Some(Stop::Failed(if lost {
                        "connection lost; acknowledgements still pending given up".to_string()
                    } else {
                        format!("no acknowledgement within {timeout:?}")
                    })),
                );
            }
        }
    }
    if let Some(reason) = publish_failure {
        return (acked, Some(reason));
    }
    if duplicates > 0 {
        tracing::debug!(
            duplicates,
            "NATS stream dropped redelivered events as duplicates"
        );
    }
    (acked, None)
}

impl Sink for NatsSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn connect(&mut self) -> Result<(), SinkError> {
        // Drop the previous runtime with its client, tasks and socket.
        self.conn = None;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                SinkError::unavailable(&self.name, format!("cannot start the sink's runtime: {e}"))
            })?;
        let (tx, disconnects) = watch::channel(0u64);
        let options = self
            .connect_options(tx)
            .map_err(|e| SinkError::refused(&self.name, e))?;
        let url = self.server_url();
        let cfg = &self.cfg;
        let subjects = &self.subjects;
        let result =
            runtime.block_on(async {
                // async-nats bounds the TCP connect only; this bounds TLS and login too.
                let client =
                    match tokio::time::timeout(cfg.connect_timeout, options.connect(url.as_str()))
                        .await
                    {
                        Ok(Ok(client)) => client,
                        Ok(Err(e)) => return Err(classify_connect_error(&e)),
                        Err(_) => {
                            return Err(ConnectFailure::Unavailable(format!(
                                "no NATS handshake within {:?}",
                                cfg.connect_timeout
                            )))
                        }
                    };
                let info = client.server_info();
                tracing::debug!(
                    server = %info.server_name,
                    version = %info.version,
                    jetstream = info.jetstream,
                    max_payload = info.max_payload,
                    "NATS server"
                );
                let js = jetstream::ContextBuilder::new()
                    .timeout(cfg.send_timeout)
                    .ack_timeout(cfg.send_timeout)
                    .max_ack_inflight(2 * PUBLISH_WINDOW)
                    .backpressure_on_inflight(true)
                    .build(client);
                ensure_stream(&js, cfg, subjects).await?;
                Ok(js)
            });
        match result {
            Ok(js) => {
                tracing::info!(sink = %self.name, stream = %self.cfg.stream, "NATS sink connected");
                self.conn = Some(Connection {
                    js,
                    disconnects,
                    runtime,
                });
                Ok(())
            }
            Err(ConnectFailure::Refused(reason)) => {
                tracing::error!(sink = %self.name, %reason, "NATS refused the sink");
                Err(SinkError::refused(&self.name, reason))
            }
            Err(ConnectFailure::Unavailable(reason)) => {
                tracing::warn!(sink = %self.name, %reason, "NATS unavailable");
                Err(SinkError::unavailable(&self.name, reason))
            }
        }
    }

    fn send(&mut self, events: &[EncodedEvent]) -> Result<usize, SinkError> {
        if events.is_empty() {
            return Ok(0);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(SinkError::unavailable(&self.name, "not connected"));
        };
        let timeout = self.cfg.send_timeout;
        let (acked, failure) = conn.runtime.block_on(publish_batch(
            &conn.js,
            &self.cfg.stream,
            &self.subjects,
            events,
            timeout,
            &mut conn.disconnects,
        ));
        let reason = match failure {
            None => return Ok(acked),
            // The connection is fine: only that event cannot go.
            Some(Stop::Rejected(reason)) => {
                return Err(SinkError::Rejected {
                    sink: self.name.clone(),
                    reason,
                    taken: acked,
                })
            }
            Some(Stop::Failed(reason)) => reason,
        };
        // The caller reconnects before it re-sends; whatever is pending here goes with it.
        self.conn = None;
        tracing::warn!(
            sink = %self.name,
            acked,
            of = events.len(),
            %reason,
            "NATS send stopped short"
        );
        if acked == 0 {
            Err(SinkError::unavailable(&self.name, reason))
        } else {
            Ok(acked)
        }
    }

    fn send_timeout(&self) -> Duration {
        self.cfg.send_timeout
    }
}
