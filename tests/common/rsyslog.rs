//! A private rsyslogd (imtcp with the GnuTLS stream driver, TLS required) on a free loopback
//! port, with its own configuration, certificates and work directory. It writes the MSG of
//! every message from APP-NAME `vigil` to `msgs.log`, one per line, and (unless started for
//! throughput) the parsed header fields plus the start of the raw message to `hdrs.log`.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;
use super::pki::Pki;

pub fn require_rsyslogd() {
    let found = Command::new("rsyslogd")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "rsyslogd not found: run appliance/install-deps.sh (it installs rsyslog and \
         rsyslog-gnutls)"
    );
}

/// A private rsyslogd, killed on drop.
pub struct Rsyslog {
    pub dir: PathBuf,
    conf: PathBuf,
    pub port: u16,
    child: Option<Child>,
    starts: u32,
}

impl Rsyslog {
    /// `authmode`: `anon` (server-authenticated TLS) or `x509/certvalid` (mutual TLS).
    pub fn start(dir: &Path, pki: &Pki, authmode: &str) -> Rsyslog {
        Rsyslog::start_with(dir, pki, authmode, None)
    }

    /// `priority`: a GnuTLS priority string limiting what the server negotiates.
    pub fn start_with(dir: &Path, pki: &Pki, authmode: &str, priority: Option<&str>) -> Rsyslog {
        Rsyslog::start_configured(dir, pki, authmode, priority, true)
    }

    /// As a receiver tuned for volume would run: only `msgs.log`, written asynchronously in
    /// large blocks (lines show up within a second).
    pub fn start_for_throughput(dir: &Path, pki: &Pki) -> Rsyslog {
        Rsyslog::start_configured(dir, pki, "anon", None, false)
    }

    fn start_configured(
        dir: &Path,
        pki: &Pki,
        authmode: &str,
        priority: Option<&str>,
        headers: bool,
    ) -> Rsyslog {
        require_rsyslogd();
        let dir = dir.to_path_buf();
        let work = dir.join("rsyslog-work");
        std::fs::create_dir_all(&work).unwrap();
        let port = free_port();
        let conf = dir.join("rsyslog.conf");
        let d = dir.display();
        // maxMessageSize comes first: it must be set before imtcp loads. MaxFrameSize lets
        // octet-counted frames up to ~1 MB through (200 KB by default).
        let text = format!(
            r#"global(
  maxMessageSize="1m"
  workDirectory="{work}"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile="{ca}"
  defaultNetstreamDriverCertFile="{cert}"
  defaultNetstreamDriverKeyFile="{key}"
)
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1"
       StreamDriver.AuthMode="{authmode}" MaxFrameSize="1000000")
input(type="imtcp" address="127.0.0.1" port="{port}"{priority})
template(name="msgonly" type="list") {{ property(name="msg") constant(value="\n") }}
template(name="hdr" type="string"
  string="%pri%|%syslogfacility%|%syslogseverity%|%timereported:::date-rfc3339%|%hostname%|%app-name%|%procid%|%msgid%|%structured-data%|%rawmsg:1:160%\n")
if $app-name == "vigil" then {{
  {actions}
}} else {{
  action(type="omfile" file="{d}/other.log")
}}
"#,
            actions = if headers {
                format!(
                    r#"action(type="omfile" file="{d}/msgs.log" template="msgonly")
  action(type="omfile" file="{d}/hdrs.log" template="hdr")"#
                )
            } else {
                format!(
                    r#"action(type="omfile" file="{d}/msgs.log" template="msgonly"
         asyncWriting="on" ioBufferSize="4m" flushInterval="1")"#
                )
            },
            work = work.display(),
            ca = pki.ca.display(),
            cert = pki.server_cert.display(),
            key = pki.server_key.display(),
            priority = priority
                .map(|p| format!(r#" gnutlsPriorityString="{p}""#))
                .unwrap_or_default(),
        );
        std::fs::write(&conf, text).unwrap();
        let mut r = Rsyslog {
            dir,
            conf,
            port,
            child: None,
            starts: 0,
        };
        r.launch();
        r
    }

    /// Starts rsyslogd (again) with the same configuration and port; returns once it listens.
    pub fn launch(&mut self) {
        assert!(self.child.is_none());
        self.starts += 1;
        let stderr =
            std::fs::File::create(self.dir.join(format!("rsyslogd-{}.err", self.starts))).unwrap();
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("rsyslogd: run appliance/install-deps.sh");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!(
                    "rsyslogd exited at startup ({status}); stderr: {} (is rsyslog-gnutls \
                     installed? appliance/install-deps.sh)",
                    self.stderr()
                );
            }
            // A bare TCP connect shows the listener is up (rsyslogd logs a failed handshake).
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd does not listen on {} after 30 s: {}",
                self.port,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("rsyslogd running").id() as i32
    }

    /// SIGTERM (rsyslogd writes out what it holds and exits), and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }

    /// SIGKILL, and waits until the process is gone (the kernel has closed its sockets).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn stderr(&self) -> String {
        let mut all = String::new();
        for i in 1..=self.starts {
            let p = self.dir.join(format!("rsyslogd-{i}.err"));
            all += &std::fs::read_to_string(p).unwrap_or_default();
        }
        all
    }

    pub fn lines(&self, file: &str) -> Vec<Vec<u8>> {
        let mut data = Vec::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join(file)) {
            f.read_to_end(&mut data).unwrap();
        }
        // Complete lines only: rsyslogd may be halfway through writing the last one.
        let mut lines: Vec<Vec<u8>> = data.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        lines.pop();
        lines
    }

    /// The MSG of every message received so far.
    pub fn msgs(&self) -> Vec<Vec<u8>> {
        self.lines("msgs.log")
    }

    /// Waits (at most `limit`) until `done` holds for the messages received.
    pub fn wait_for(&self, limit: Duration, done: impl Fn(&[Vec<u8>]) -> bool) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + limit;
        loop {
            let msgs = self.msgs();
            if done(&msgs) || Instant::now() >= deadline {
                return msgs;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, params: &str) -> String {
        format!("syslog+tls://127.0.0.1:{}?{params}", self.port)
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.kill();
    }
}
