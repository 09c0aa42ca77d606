//! The local control socket: `vigil block`, `unblock` and `blocks` talk to the running daemon
//! through a Unix socket only root and the daemon's group may open (mode 0660). One JSON
//! command per connection, one JSON reply.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Sender};

use super::engine::{Command, Msg, Reply};

/// How long a client may take to send its command, and the responder to answer.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The socket bound (while still privileged: `/run` is root's), not yet served.
pub struct BoundControl {
    path: PathBuf,
    listener: UnixListener,
}

impl ControlServer {
    /// Binds `path` (replacing a stale socket, refusing one a live daemon answers on) with mode
    /// 0660 and group `group` (else the process's).
    pub fn bind(path: &Path, group: Option<nix::unistd::Gid>) -> Result<BoundControl, String> {
        let shown = path.display();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(format!("{shown}: another vigil daemon is listening there"));
            }
            std::fs::remove_file(path).map_err(|e| format!("cannot remove stale {shown}: {e}"))?;
        }
        let listener = UnixListener::bind(path).map_err(|e| format!("cannot bind {shown}: {e}"))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .map_err(|e| format!("cannot set permissions of {shown}: {e}"))?;
        if let Some(gid) = group {
            nix::unistd::chown(path, None, Some(gid))
                .map_err(|e| format!("cannot give {shown} to group {gid}: {e}"))?;
        }
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("{shown}: {e}"))?;
        Ok(BoundControl {
            path: path.to_path_buf(),
            listener,
        })
    }
}

impl BoundControl {
    /// Serves commands on its own thread, handing them to the responder.
    pub fn start(self, commands: Sender<Msg>) -> Result<ControlServer, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let listener = self.listener;
        let thread = std::thread::Builder::new()
            .name("vigil-control".into())
            .spawn(move || serve(listener, commands, stopping))
            .map_err(|e| format!("cannot start the control thread: {e}"))?;
        Ok(ControlServer {
            path: self.path,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(listener: UnixListener, commands: Sender<Msg>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = handle(stream, &commands) {
                    tracing::warn!(error = %e, "control socket: bad request");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                tracing::warn!(error = %e, "control socket: accept failed");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

fn handle(stream: UnixStream, commands: &Sender<Msg>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let uid = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .ok()
        .map(|c| c.uid());
    let mut line = String::new();
    // One line of at most 64 KiB: a client cannot make the daemon hold more.
    BufReader::new(std::io::Read::take(&stream, 64 * 1024)).read_line(&mut line)?;
    let reply = match serde_json::from_str::<Command>(&line) {
        Ok(command) => {
            let (tx, rx) = bounded(1);
            let sent = commands.send(Msg::Operator {
                command,
                uid,
                reply: tx,
            });
            match sent.ok().and_then(|()| rx.recv_timeout(IO_TIMEOUT).ok()) {
                Some(reply) => reply,
                None => Reply {
                    ok: false,
                    message: "the responder did not answer (stopping?)".into(),
                    blocks: Vec::new(),
                },
            }
        }
        Err(e) => Reply {
            ok: false,
            message: format!("bad command: {e}"),
            blocks: Vec::new(),
        },
    };
    let mut out = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    out.push(b'\n');
    (&stream).write_all(&out)
}

/// Sends one command to the daemon at `path` and returns its reply.
pub fn request(path: &Path, command: &Command) -> Result<Reply, String> {
    let shown = path.display();
    let stream = UnixStream::connect(path).map_err(|e| {
        format!(
            "cannot reach the daemon at {shown}: {e} (is `vigil run` up with [response] enabled, \
             and are you root or in its group?)"
        )
    })?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT + Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let mut out = serde_json::to_vec(command).map_err(|e| e.to_string())?;
    out.push(b'\n');
    (&stream)
        .write_all(&out)
        .map_err(|e| format!("{shown}: {e}"))?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(|e| format!("{shown}: {e}"))?;
    serde_json::from_str(&line).map_err(|e| format!("{shown}: bad reply {line:?}: {e}"))
}
