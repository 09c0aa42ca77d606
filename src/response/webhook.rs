//! The webhook action: each block is POSTed as JSON over HTTPS to a remote firewall or EDR.
//!
//! One thread owns the HTTP client (ureq, on the project's rustls with the ring provider) and
//! drains a bounded queue, so the detection path never waits on the network: [`Webhook::post`]
//! only enqueues. 5xx answers, 429 and transport errors are retried with a doubling backoff;
//! any other answer that is not 2xx is a permanent failure of that body (retrying a request
//! the receiver rejected cannot make it succeed). Redirects are not followed.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};

use crate::output::syslog::{load_certs, load_key};

/// First retry delay; it doubles on each retry up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How much of an error answer's body goes into the log.
const LOGGED_BODY: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// `https://…`; `http://` only to a loopback host (a local agent that forwards).
    pub url: String,
    /// CA certificates (PEM) that the server's certificate must chain to; `None`: the system's.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS; needs `key`.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// Sent as `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    /// Time limit of one request, connection and TLS handshake included.
    pub timeout: Duration,
    /// Bodies waiting to be sent; beyond this `post` drops.
    pub queue: usize,
    /// Retries of one body after the first attempt, before it is given up.
    pub retries: u32,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: String::new(),
            ca_file: None,
            cert: None,
            key: None,
            bearer_token: None,
            timeout: Duration::from_secs(5),
            queue: 1024,
            retries: 5,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook url {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("webhook TLS setup: {0}")]
    Tls(String),
    #[error("webhook bearer token: {0}")]
    Token(&'static str),
    #[error("cannot start the webhook thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// What the webhook did since it was spawned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookCounters {
    /// Bodies the receiver accepted (2xx).
    pub sent: u64,
    /// Bodies given up: rejected by the receiver, or still failing after every retry.
    pub failed: u64,
    /// Bodies never attempted: the queue was full, or shutdown's deadline came first.
    pub dropped: u64,
    /// Attempts after the first, over all bodies.
    pub retries: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    retries: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub struct Webhook {
    queue: Option<Sender<Vec<u8>>>,
    /// Dropped to wake the thread out of a backoff sleep when shutting down.
    stop: Option<Sender<()>>,
    /// Set once by shutdown: after it the thread stops sending.
    deadline: Arc<OnceLock<Instant>>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
    /// How long Drop lets the queue drain.
    drop_grace: Duration,
}

impl Webhook {
    /// Checks the configuration and reads the certificate files now (a bad file is reported at
    /// startup, not at the first block), then starts the sending thread.
    pub fn spawn(config: WebhookConfig) -> Result<Webhook, WebhookError> {
        let https = check_url(&config.url)?;
        if let Some(t) = &config.bearer_token {
            // Also keeps CR/LF (header injection) out.
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(WebhookError::Token(
                    "must be non-empty printable ASCII without spaces",
                ));
            }
        }
        let tls = if https {
            tls_config(&config)?
        } else {
            TlsConfig::default()
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_global(Some(config.timeout))
            // The status decides retry or not; redirects are answered as failures: a block is
            // not something to forward to wherever a server points.
            .http_status_as_error(false)
            .max_redirects(0)
            // The sensor's configuration decides where blocks go, not its environment.
            .proxy(None)
            .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();

        let (tx, rx) = crossbeam_channel::bounded(config.queue.max(1));
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
        let deadline = Arc::new(OnceLock::new());
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            agent,
            url: config.url.clone(),
            auth: config.bearer_token.as_ref().map(|t| format!("Bearer {t}")),
            timeout: config.timeout,
            retries: config.retries,
            queue: rx,
            stop: stop_rx,
            deadline: deadline.clone(),
            counters: counters.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("vigil-webhook".to_string())
            .spawn(move || worker.run())
            .map_err(WebhookError::Thread)?;
        Ok(Webhook {
            queue: Some(tx),
            stop: Some(stop_tx),
            deadline,
            counters,
            thread: Some(thread),
            drop_grace: config.timeout,
        })
    }

    /// Queues a JSON body without blocking. False (and counted as dropped) when the queue is
    /// full.
    pub fn post(&self, body: Vec<u8>) -> bool {
        let Some(tx) = &self.queue else {
            return false;
        };
        match tx.try_send(body) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                bump(&self.counters.dropped);
                false
            }
        }
    }

    pub fn counters(&self) -> WebhookCounters {
        let c = &self.counters;
        WebhookCounters {
            sent: c.sent.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }

    /// Sends what is queued until `deadline`, then stops the thread: bodies still queued then
    /// are counted as dropped, and a body between retries as failed. Requests started after
    /// this call are limited to the deadline; one already in flight keeps its own time limit,
    /// so this may return up to one request timeout late.
    pub fn shutdown(mut self, deadline: Instant) -> WebhookCounters {
        self.stop_thread(deadline);
        self.counters()
    }

    fn stop_thread(&mut self, deadline: Instant) {
        let _ = self.deadline.set(deadline);
        // Disconnecting both channels: the thread drains the queue, and wakes from a backoff.
        self.queue = None;
        self.stop = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("webhook thread panicked");
            }
        }
    }
}

impl Drop for Webhook {
    /// Drains the queue for up to the request timeout, as `shutdown` would.
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop_thread(Instant::now() + self.drop_grace);
        }
    }
}

/// True for https, false for http to a loopback host; anything else is refused.
fn check_url(url: &str) -> Result<bool, WebhookError> {
    let bad = |reason: &str| WebhookError::Url {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    let host = parsed.host().ok_or_else(|| bad("no host"))?;
    match parsed.scheme() {
        "https" => Ok(true),
        "http" => {
            let loopback = match host {
                url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
                url::Host::Ipv4(a) => IpAddr::V4(a).is_loopback(),
                url::Host::Ipv6(a) => IpAddr::V6(a).is_loopback(),
            };
            if loopback {
                Ok(false)
            } else {
                Err(bad(
                    "http:// is allowed only to a loopback address: use https://",
                ))
            }
        }
        _ => Err(bad("the scheme must be https (or http to loopback)")),
    }
}

fn tls_config(config: &WebhookConfig) -> Result<TlsConfig, WebhookError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match &config.ca_file {
        Some(path) => {
            let certs = load_certs("CA file", path).map_err(WebhookError::Tls)?;
            // ureq skips certificates it cannot use; check them here so a bad CA file is an
            // error at startup rather than "unknown issuer" at every request.
            let mut store = rustls::RootCertStore::empty();
            for (i, c) in certs.iter().enumerate() {
                store.add(c.clone()).map_err(|e| {
                    WebhookError::Tls(format!(
                        "CA file {}: certificate {} is not a usable trust anchor: {e}",
                        path.display(),
                        i + 1
                    ))
                })?;
            }
            certs
        }
        None => {
            let certs = rustls_native_certs::load_native_certs().map_err(|e| {
                WebhookError::Tls(format!(
                    "cannot read the system's CA certificates ({e}): set ca_file"
                ))
            })?;
            if certs.is_empty() {
                return Err(WebhookError::Tls(
                    "no CA certificates in the system store: set ca_file".to_string(),
                ));
            }
            certs
        }
    };
    let roots = RootCerts::new_with_certs(
        &roots
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect::<Vec<_>>(),
    );

    let client_cert = match (&config.cert, &config.key) {
        (None, None) => None,
        (Some(cert), Some(key_file)) => {
            let chain = load_certs("client certificate file", cert).map_err(WebhookError::Tls)?;
            let key = load_key(key_file).map_err(WebhookError::Tls)?;
            // Checked now: a key that does not match would only fail in the handshake.
            rustls::sign::CertifiedKey::from_der(chain.clone(), key, &provider).map_err(|e| {
                WebhookError::Tls(format!(
                    "client certificate {} and key {} do not go together: {e}",
                    cert.display(),
                    key_file.display()
                ))
            })?;
            let chain: Vec<Certificate<'static>> = chain
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned())
                .collect();
            // ureq does not export its key-kind type, so it parses the PEM itself; `load_key`
            // above already accepted it.
            let pem = std::fs::read(key_file).map_err(|e| {
                WebhookError::Tls(format!("cannot read {}: {e}", key_file.display()))
            })?;
            let key = PrivateKey::from_pem(&pem).map_err(|e| {
                WebhookError::Tls(format!("client key file {}: {e}", key_file.display()))
            })?;
            Some(ClientCert::new_with_certs(&chain, key))
        }
        _ => {
            return Err(WebhookError::Tls(
                "cert and key go together: set both or neither".to_string(),
            ))
        }
    };

    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider)
        .root_certs(roots)
        .client_cert(client_cert)
        .build())
}

/// The outcome of one attempt.
enum Attempt {
    Sent,
    Retry(String),
    GiveUp(String),
}

struct Worker {
    agent: ureq::Agent,
    url: String,
    auth: Option<String>,
    timeout: Duration,
    retries: u32,
    queue: Receiver<Vec<u8>>,
    stop: Receiver<()>,
    deadline: Arc<OnceLock<Instant>>,
    counters: Arc<Counters>,
}

impl Worker {
    fn run(self) {
        // Ends when the queue is disconnected (shutdown) and empty.
        while let Ok(body) = self.queue.recv() {
            if self.past_deadline() {
                bump(&self.counters.dropped);
                continue;
            }
            self.deliver(&body);
        }
    }

    fn past_deadline(&self) -> bool {
        self.deadline.get().is_some_and(|d| Instant::now() >= *d)
    }

    fn deliver(&self, body: &[u8]) {
        let mut backoff = FIRST_BACKOFF;
        let mut retried = 0;
        loop {
            let why = match self.attempt(body) {
                Attempt::Sent => {
                    bump(&self.counters.sent);
                    return;
                }
                Attempt::GiveUp(why) => {
                    tracing::warn!(url = %self.url, "webhook: {why}: body given up");
                    bump(&self.counters.failed);
                    return;
                }
                Attempt::Retry(why) => why,
            };
            if retried >= self.retries {
                tracing::warn!(url = %self.url, retries = retried, "webhook: {why}: body given up after retries");
                bump(&self.counters.failed);
                return;
            }
            tracing::debug!(url = %self.url, "webhook: {why}: retrying in {backoff:?}");
            if !self.sleep(backoff) {
                tracing::warn!(url = %self.url, "webhook: {why}: shutting down, body given up");
                bump(&self.counters.failed);
                return;
            }
            retried += 1;
            bump(&self.counters.retries);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Waits `d`, cut short by a shutdown. False when the deadline came before `d` was over.
    fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        if self.deadline.get().is_none() {
            match self.stop.recv_timeout(d) {
                Err(RecvTimeoutError::Timeout) => return true,
                // Shutdown began: go on, within its deadline.
                Ok(()) | Err(RecvTimeoutError::Disconnected) => {}
            }
        }
        let deadline = *self
            .deadline
            .get()
            .expect("set before the stop channel drops");
        if until > deadline {
            return false;
        }
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        true
    }

    fn attempt(&self, body: &[u8]) -> Attempt {
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        if let Some(auth) = &self.auth {
            req = req.header("Authorization", auth);
        }
        // During shutdown no request outlives the deadline by more than needed.
        if let Some(d) = self.deadline.get() {
            let left = d.saturating_duration_since(Instant::now());
            req = req
                .config()
                .timeout_global(Some(left.min(self.timeout).max(Duration::from_millis(1))))
                .build();
        }
        match req.send(body) {
            Ok(mut resp) => {
                let status = resp.status();
                // Read (a bounded part of) the answer so the connection can be reused.
                let text = resp
                    .body_mut()
                    .with_config()
                    .limit(64 * 1024)
                    .read_to_vec()
                    .map(|b| {
                        let b = &b[..b.len().min(LOGGED_BODY)];
                        String::from_utf8_lossy(b).into_owned()
                    })
                    .unwrap_or_default();
                let code = status.as_u16();
                if status.is_success() {
                    Attempt::Sent
                } else if status.is_server_error() || code == 429 {
                    Attempt::Retry(format!("HTTP {code}"))
                } else {
                    Attempt::GiveUp(format!("HTTP {status}: {}", text.trim()))
                }
            }
            Err(e) => match e {
                // The server's certificate or our TLS setup: the same next time.
                ureq::Error::Rustls(_) | ureq::Error::Tls(_) => {
                    Attempt::GiveUp(format!("TLS: {e}"))
                }
                // A failed handshake comes back as an I/O error wrapping rustls's.
                ureq::Error::Io(ref io)
                    if io
                        .get_ref()
                        .is_some_and(|i| i.downcast_ref::<rustls::Error>().is_some()) =>
                {
                    Attempt::GiveUp(format!("TLS: {e}"))
                }
                ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
                    Attempt::GiveUp(format!("request: {e}"))
                }
                // Connection refused or reset, DNS, timeouts: the receiver may be back soon.
                _ => Attempt::Retry(e.to_string()),
            },
        }
    }
}

#[cfg(test)]
#[path = "../../tests/common/pki.rs"]
mod test_pki;

#[cfg(test)]
mod tests {
    use super::test_pki::{Ca, Pki};
    use super::*;
    use std::collections::VecDeque;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{SocketAddr, TcpListener};
    use std::sync::Mutex;

    use rustls::server::WebPkiClientVerifier;
    use rustls::{ServerConfig, ServerConnection, StreamOwned};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    #[derive(Debug, Clone)]
    struct Request {
        method: String,
        path: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Request {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// An HTTPS receiver on loopback that answers the scripted statuses in order (then 200)
    /// and records every request. With `client_ca`, it requires a client certificate.
    struct Receiver {
        addr: SocketAddr,
        requests: Arc<Mutex<Vec<Request>>>,
    }

    impl Receiver {
        fn start(pki: &Pki, client_ca: bool, statuses: &[u16]) -> Receiver {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let chain = CertificateDer::pem_file_iter(&pki.server_cert)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
            let builder = ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap();
            let builder = if client_ca {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
                    roots.add(c.unwrap()).unwrap();
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(verifier)
            } else {
                builder.with_no_client_auth()
            };
            let config = Arc::new(builder.with_single_cert(chain, key).unwrap());
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let requests = Arc::new(Mutex::new(Vec::new()));
            let statuses = Arc::new(Mutex::new(
                statuses.iter().copied().collect::<VecDeque<_>>(),
            ));
            let recorded = requests.clone();
            // Serves until the test process ends; each connection on its own thread, since
            // the client may keep one open while it opens another.
            std::thread::spawn(move || {
                for tcp in listener.incoming() {
                    let Ok(tcp) = tcp else { continue };
                    let (config, recorded, statuses) =
                        (config.clone(), recorded.clone(), statuses.clone());
                    std::thread::spawn(move || {
                        let conn = ServerConnection::new(config).unwrap();
                        let mut tls = BufReader::new(StreamOwned::new(conn, tcp));
                        while let Some(req) = read_request(&mut tls) {
                            recorded.lock().unwrap().push(req);
                            let status = statuses.lock().unwrap().pop_front().unwrap_or(200);
                            let answer =
                                format!("HTTP/1.1 {status} X\r\ncontent-length: 4\r\n\r\ndone");
                            if tls.get_mut().write_all(answer.as_bytes()).is_err() {
                                return;
                            }
                            let _ = tls.get_mut().flush();
                        }
                    });
                }
            });
            Receiver { addr, requests }
        }

        fn url(&self) -> String {
            format!("https://127.0.0.1:{}/v1/block", self.addr.port())
        }

        fn requests(&self) -> Vec<Request> {
            self.requests.lock().unwrap().clone()
        }
    }

    /// One HTTP/1.1 request with a Content-Length body; None at the end of the connection or
    /// on a TLS error.
    fn read_request(r: &mut impl BufRead) -> Option<Request> {
        let mut line = String::new();
        r.read_line(&mut line).ok().filter(|&n| n > 0)?;
        let mut parts = line.split_whitespace();
        let method = parts.next()?.to_string();
        let path = parts.next()?.to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).ok()?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (n, v) = h.split_once(':')?;
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; len];
        r.read_exact(&mut body).ok()?;
        Some(Request {
            method,
            path,
            headers,
            body,
        })
    }

    fn pki(name: &str) -> (tempfile::TempDir, Pki) {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::write(dir.path(), name, &Ca::new(&format!("{name} CA")));
        (dir, pki)
    }

    /// Waits until the counters show `n` bodies finished (sent or failed).
    fn wait_done(w: &Webhook, n: u64) -> WebhookCounters {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let c = w.counters();
            if c.sent + c.failed >= n || Instant::now() > until {
                return c;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn config(url: String, pki: &Pki) -> WebhookConfig {
        WebhookConfig {
            url,
            ca_file: Some(pki.ca.clone()),
            timeout: Duration::from_secs(2),
            ..WebhookConfig::default()
        }
    }

    #[test]
    fn posts_json_with_headers_and_client_certificate() {
        let (_dir, pki) = pki("post");
        let rx = Receiver::start(&pki, true, &[]);
        let w = Webhook::spawn(WebhookConfig {
            cert: Some(pki.client_cert.clone()),
            key: Some(pki.client_key.clone()),
            bearer_token: Some("s3cret-token".to_string()),
            ..config(rx.url(), &pki)
        })
        .unwrap();
        let bodies = [
            br#"{"action":"block","ip":"192.0.2.1","ttl":60}"#.to_vec(),
            br#"{"action":"block","ip":"2001:db8::1","ttl":30}"#.to_vec(),
        ];
        for b in &bodies {
            assert!(w.post(b.clone()));
        }
        let c = w.shutdown(Instant::now() + Duration::from_secs(10));
        assert_eq!(
            c,
            WebhookCounters {
                sent: 2,
                ..Default::default()
            }
        );
        let reqs = rx.requests();
        assert_eq!(reqs.len(), 2, "{reqs:?}");
        for (req, body) in reqs.iter().zip(&bodies) {
            assert_eq!(req.method, "POST");
            assert_eq!(req.path, "/v1/block");
            assert_eq!(req.header("content-type"), Some("application/json"));
            assert_eq!(req.header("authorization"), Some("Bearer s3cret-token"));
            assert!(req.header("user-agent").unwrap().starts_with("vigil/"));
            let sent: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            let expected: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(sent, expected);
        }
    }

    #[test]
    fn retries_5xx_then_succeeds() {
        let (_dir, pki) = pki("retry");
        let rx = Receiver::start(&pki, false, &[503, 503]);
        let w = Webhook::spawn(config(rx.url(), &pki)).unwrap();
        let start = Instant::now();
        assert!(w.post(br#"{"ip":"192.0.2.2"}"#.to_vec()));
        let c = wait_done(&w, 1);
        // Backoff 0.5 s then 1 s.
        assert!(
            start.elapsed() >= Duration::from_millis(1400),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(
            c,
            WebhookCounters {
                sent: 1,
                retries: 2,
                ..Default::default()
            }
        );
        let reqs = rx.requests();
        assert_eq!(reqs.len(), 3);
        assert!(reqs.iter().all(|r| r.body == br#"{"ip":"192.0.2.2"}"#));
        assert_eq!(reqs[0].header("authorization"), None);
    }

    #[test]
    fn gives_up_after_retries_and_on_4xx() {
        let (_dir, pki) = pki("giveup");
        // One retry allowed: 503, 503 gives up; then 400 is not retried; then 200.
        let rx = Receiver::start(&pki, false, &[503, 503, 400]);
        let w = Webhook::spawn(WebhookConfig {
            retries: 1,
            ..config(rx.url(), &pki)
        })
        .unwrap();
        for ip in ["a", "b", "c"] {
            assert!(w.post(format!(r#"{{"ip":"{ip}"}}"#).into_bytes()));
        }
        let c = wait_done(&w, 3);
        assert_eq!(
            c,
            WebhookCounters {
                sent: 1,
                failed: 2,
                retries: 1,
                dropped: 0
            }
        );
        let bodies: Vec<Vec<u8>> = rx.requests().into_iter().map(|r| r.body).collect();
        assert_eq!(
            bodies,
            vec![
                br#"{"ip":"a"}"#.to_vec(),
                br#"{"ip":"a"}"#.to_vec(),
                br#"{"ip":"b"}"#.to_vec(),
                br#"{"ip":"c"}"#.to_vec()
            ]
        );
    }

    #[test]
    fn wrong_ca_fails_without_retries() {
        let (_dir, server_pki) = pki("server");
        let (_dir2, other) = pki("other");
        let pki = server_pki;
        let rx = Receiver::start(&pki, false, &[]);
        let w = Webhook::spawn(config(rx.url(), &other)).unwrap();
        assert!(w.post(b"{}".to_vec()));
        let c = wait_done(&w, 1);
        assert_eq!(
            c,
            WebhookCounters {
                failed: 1,
                ..Default::default()
            }
        );
        assert!(rx.requests().is_empty());
    }

    #[test]
    fn full_queue_drops_and_shutdown_keeps_its_deadline() {
        // Accepts connections (the kernel does) but never answers: every request hangs until
        // its timeout.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let (_dir, pki) = pki("silent");
        let w = Webhook::spawn(WebhookConfig {
            queue: 1,
            timeout: Duration::from_secs(1),
            ..config(
                format!("https://127.0.0.1:{}/", silent.local_addr().unwrap().port()),
                &pki,
            )
        })
        .unwrap();
        let accepted = (0..5).filter(|_| w.post(b"{}".to_vec())).count() as u64;
        // At most one in flight and one queued.
        assert!(accepted <= 2, "{accepted}");
        assert_eq!(w.counters().dropped, 5 - accepted);
        let start = Instant::now();
        let c = w.shutdown(Instant::now() + Duration::from_millis(100));
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(c.sent, 0);
        assert_eq!(c.sent + c.failed + c.dropped, 5, "{c:?}");
    }

    #[test]
    fn config_is_checked_at_spawn() {
        let url = |u: &str| {
            Webhook::spawn(WebhookConfig {
                url: u.to_string(),
                ..WebhookConfig::default()
            })
        };
        for bad in [
            "http://192.0.2.1/x",
            "http://example.com/",
            "ftp://127.0.0.1/",
            "not a url",
        ] {
            assert!(matches!(url(bad), Err(WebhookError::Url { .. })), "{bad}");
        }
        // http to loopback needs no TLS files.
        for ok in [
            "http://127.0.0.1:9/",
            "http://[::1]:9/",
            "http://localhost:9/",
        ] {
            url(ok).unwrap();
        }
        let (_dir, pki) = pki("cfg");
        let base = config("https://127.0.0.1:9/".to_string(), &pki);
        let e = Webhook::spawn(WebhookConfig {
            cert: Some(pki.client_cert.clone()),
            ..base.clone()
        });
        assert!(matches!(e, Err(WebhookError::Tls(_))));
        let e = Webhook::spawn(WebhookConfig {
            ca_file: Some(pki.server_key.clone()),
            ..base.clone()
        });
        assert!(matches!(e, Err(WebhookError::Tls(_))));
        let e = Webhook::spawn(WebhookConfig {
            bearer_token: Some("a\r\nX-Evil: 1".to_string()),
            ..base.clone()
        });
        assert!(matches!(e, Err(WebhookError::Token(_))));
    }
}
