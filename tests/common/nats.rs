//! A nats-server of the test's own (JetStream, loopback, temporary store), and reading back what
//! a stream holds: shared by the sink's tests and the delivery tests.
#![allow(dead_code)]

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::ConnectOptions;

use super::free_port;

// ---------------------------------------------------------------------------------------------
// A nats-server of our own.

pub fn nats_server_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    // Debian installs it in /usr/sbin, which is not on every user's PATH.
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nats-server not found on PATH or in /usr/sbin: these tests need a real NATS \
                 server; run appliance/install-deps.sh (Debian package nats-server)"
            )
        })
}

pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    store: PathBuf,
    log: PathBuf,
    extra: Vec<String>,
}

impl NatsServer {
    /// `-js` with a store in `dir`, on a free port, plus `extra` arguments.
    pub fn start(dir: &Path, extra: &[&str]) -> NatsServer {
        NatsServer::start_with(dir, true, extra)
    }

    pub fn start_with(dir: &Path, jetstream: bool, extra: &[&str]) -> NatsServer {
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if jetstream {
            extra.push("-js".to_string());
        }
        let mut server = NatsServer {
            child: None,
            port: free_port(),
            store: dir.join("jetstream"),
            log: dir.join("nats-server.log"),
            extra,
        };
        server.spawn();
        server
    }

    pub fn spawn(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("server log file");
        let child = Command::new(nats_server_bin())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(&self.store)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "nats-server exited ({status}) while starting:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            let addr = ([127, 0, 0, 1], self.port).into();
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server not listening on port {} after 20 s:\n{}",
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("server running").id() as i32
    }

    /// SIGKILL (no shutdown, no lame duck) and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Reaps a server killed from another thread.
    pub fn reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// Starts again on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Stored {
    pub subject: String,
    pub payload: Vec<u8>,
    pub msg_id: Option<String>,
}

/// The stream's configuration and every message in it, read with async-nats.
pub fn read_stream(
    url: &str,
    options: ConnectOptions,
    stream: &str,
) -> (async_nats::jetstream::stream::Info, Vec<Stored>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            let client = options.connect(url).await.expect("reader connects");
            let js = async_nats::jetstream::new(client);
            let mut s = js.get_stream(stream).await.expect("stream exists");
            let info = s.info().await.expect("stream info").clone();
            let mut out = Vec::with_capacity(info.state.messages as usize);
            if info.state.messages > 0 {
                for seq in info.state.first_sequence..=info.state.last_sequence {
                    let m = s.get_raw_message(seq).await.expect("stored message");
                    out.push(Stored {
                        subject: m.subject.to_string(),
                        payload: m.payload.to_vec(),
                        // The constant: a &str name does not match the parsed header.
                        msg_id: m
                            .headers
                            .get(async_nats::header::NATS_MESSAGE_ID)
                            .map(|v| v.as_str().to_string()),
                    });
                }
            }
            (info, out)
        })
        .await
        .expect("stream read back within 60 s")
    })
}

/// A stream's info (message count, bytes) without reading its messages.
pub fn stream_info(url: &str, stream: &str) -> async_nats::jetstream::stream::Info {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), async {
            let client = async_nats::connect(url).await.expect("connect");
            let js = async_nats::jetstream::new(client);
            let mut st = js.get_stream(stream).await.expect("stream");
            st.info().await.expect("info").clone()
        })
        .await
        .expect("stream info within 20 s")
    })
}
