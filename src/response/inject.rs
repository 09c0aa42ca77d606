//! Puts forged frames on the wire through an AF_PACKET raw socket bound to one interface.
//!
//! The socket is opened with protocol 0, so the kernel never hooks it into receive: it queues
//! no traffic and costs nothing on a busy link. Frames go through the interface's qdisc like any
//! other (no PACKET_QDISC_BYPASS), so tc shaping and accounting see them. Other packet sockets
//! on the interface, a capture included, see them as outgoing frames.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::capture::af_packet::interface_index;

/// Why an injector could not open or a frame could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("interface {iface}: no such interface")]
    NoSuchInterface { iface: String },
    #[error(
        "interface {iface}: permission denied opening an AF_PACKET socket (needs CAP_NET_RAW)"
    )]
    PermissionDenied { iface: String },
    #[error("interface {iface}: {what}: {source}")]
    Io {
        iface: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("interface {iface}: short write: {sent} of {len} bytes sent")]
    ShortWrite {
        iface: String,
        sent: usize,
        len: usize,
    },
}

/// An AF_PACKET socket that sends complete Ethernet frames out of one interface.
#[derive(Debug)]
pub struct Injector {
    fd: OwnedFd,
    ifindex: i32,
    iface: String,
}

impl Injector {
    /// Opens the socket and binds it to `iface`. Needs CAP_NET_RAW in the interface's network
    /// namespace (the one the calling thread is in).
    pub fn open(iface: &str) -> Result<Injector, InjectError> {
        let ifindex = interface_index(iface).map_err(|_| InjectError::NoSuchInterface {
            iface: iface.to_string(),
        })?;
        let io_err = |what: &'static str| InjectError::Io {
            iface: iface.to_string(),
            what,
            source: io::Error::last_os_error(),
        };
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            let source = io::Error::last_os_error();
            if source.kind() == io::ErrorKind::PermissionDenied {
                return Err(InjectError::PermissionDenied {
                    iface: iface.to_string(),
                });
            }
            return Err(InjectError::Io {
                iface: iface.to_string(),
                what: "cannot open an AF_PACKET socket",
                source,
            });
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let addr = link_addr(ifindex, 0, None);
        // SAFETY: `addr` is a valid sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io_err("cannot bind to the interface"));
        }
        Ok(Injector {
            fd,
            ifindex,
            iface: iface.to_string(),
        })
    }

    /// Sends one complete Ethernet frame (no FCS; the NIC pads and appends it).
    ///
    /// Never blocks: a full socket buffer is an error (EAGAIN) the caller counts, rather than a
    /// stall of the thread that detected the attack.
    pub fn send(&self, frame: &[u8]) -> Result<(), InjectError> {
        // The outer ethertype as skb->protocol, so the stack (tc filters, veth) classifies the
        // frame as what it is; the bytes are already in network order.
        let protocol = match frame.get(12..14) {
            Some(&[hi, lo]) => u16::from_ne_bytes([hi, lo]),
            _ => 0,
        };
        let dst_mac = frame.get(..6).and_then(|mac| <[u8; 6]>::try_from(mac).ok());
        let addr = link_addr(self.ifindex, protocol, dst_mac);
        loop {
            // SAFETY: `frame` is valid for `frame.len()` bytes and `addr` is a valid
            // sockaddr_ll of the size given; the kernel copies both.
            let sent = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    libc::MSG_DONTWAIT,
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if sent < 0 {
                let source = io::Error::last_os_error();
                if source.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(InjectError::Io {
                    iface: self.iface.clone(),
                    what: "cannot send a frame",
                    source,
                });
            }
            return if sent as usize == frame.len() {
                Ok(())
            } else {
                Err(InjectError::ShortWrite {
                    iface: self.iface.clone(),
                    sent: sent as usize,
                    len: frame.len(),
                })
            };
        }
    }

    /// The interface the frames go out of.
    pub fn iface(&self) -> &str {
        &self.iface
    }
}

/// A link-layer address on interface `ifindex`; `protocol` in network order.
fn link_addr(ifindex: i32, protocol: u16, mac: Option<[u8; 6]>) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = protocol;
    addr.sll_ifindex = ifindex;
    if let Some(mac) = mac {
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&mac);
    }
    addr
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::forge::{tcp_reset, L2Header, TcpSeen, Toward};
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    use std::io::{BufRead, BufReader};
    use std::net::IpAddr;
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    #[test]
    fn open_names_a_missing_interface() {
        let err = Injector::open("vigil-nope0").unwrap_err();
        assert!(
            matches!(err, InjectError::NoSuchInterface { .. }),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "interface vigil-nope0: no such interface");
    }

    /// Two network namespaces joined by a veth pair; deleted on drop, panic included (the
    /// veth goes with its namespace).
    struct Lab {
        client_ns: String,
        server_ns: String,
        client_if: String,
        server_if: String,
    }

    const CLIENT_IP: &str = "10.200.0.1";
    const SERVER_IP: &str = "10.200.0.2";
    const PORT: u16 = 7777;

    impl Lab {
        fn new() -> Lab {
            let pid = std::process::id();
            let lab = Lab {
                client_ns: format!("vigil-inj-{pid}-c"),
                server_ns: format!("vigil-inj-{pid}-s"),
                client_if: format!("vgi{pid}c"),
                server_if: format!("vgi{pid}s"),
            };
            ip(&["netns", "add", &lab.client_ns]);
            ip(&["netns", "add", &lab.server_ns]);
            ip(&[
                "link",
                "add",
                &lab.client_if,
                "netns",
                &lab.client_ns,
                "type",
                "veth",
                "peer",
                "name",
                &lab.server_if,
                "netns",
                &lab.server_ns,
            ]);
            for (ns, dev, addr) in [
                (&lab.client_ns, &lab.client_if, CLIENT_IP),
                (&lab.server_ns, &lab.server_if, SERVER_IP),
            ] {
                let cidr = format!("{addr}/24");
                ip(&["-n", ns, "addr", "add", &cidr, "dev", dev]);
                ip(&["-n", ns, "link", "set", dev, "up"]);
            }
            lab
        }

        /// Runs `f` on a thread that has joined namespace `ns`. Sockets it opens stay in that
        /// namespace when handed back.
        fn within<T: Send + 'static>(&self, ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
            let path = format!("/var/run/netns/{ns}");
            std::thread::spawn(move || {
                let file = std::fs::File::open(&path).expect("netns file");
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .expect("namespace thread")
        }

        fn python(&self, ns: &str, script: &str) -> Script {
            let mut child = Command::new("ip")
                .args(["netns", "exec", ns, "/usr/bin/python3", "-u", "-c", script])
                .stdout(Stdio::piped())
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn python3");
            let stdout = child.stdout.take().expect("stdout");
            let (tx, lines) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            Script { child, lines }
        }
    }

    impl Drop for Lab {
        fn drop(&mut self) {
            for ns in [&self.client_ns, &self.server_ns] {
                let _ = Command::new("ip").args(["netns", "del", ns]).status();
            }
        }
    }

    fn ip(args: &[&str]) {
        let status = Command::new("ip").args(args).status().expect("run ip");
        assert!(status.success(), "ip {args:?} failed: {status}");
    }

    /// A python3 helper and its stdout lines; killed on drop.
    struct Script {
        child: Child,
        lines: mpsc::Receiver<String>,
    }

    impl Script {
        fn line(&self, what: &str) -> String {
            self.lines
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("no line from the {what} ({e})"))
        }
    }

    impl Drop for Script {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// A test-only AF_PACKET receive socket (ETH_P_ALL) on one interface.
    struct Sniffer(OwnedFd);

    impl Sniffer {
        fn open(iface: &str) -> Sniffer {
            let ifindex = interface_index(iface).expect("interface");
            let all = (libc::ETH_P_ALL as u16).to_be();
            // SAFETY: plain socket(2) call; checked.
            let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(all)) };
            assert!(raw >= 0, "sniffer socket: {}", io::Error::last_os_error());
            // SAFETY: fresh descriptor nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let addr = link_addr(ifindex, all, None);
            // SAFETY: valid sockaddr_ll of the size given.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "sniffer bind: {}", io::Error::last_os_error());
            let timeout = libc::timeval {
                tv_sec: 0,
                tv_usec: 100_000,
            };
            // SAFETY: `timeout` is a valid timeval of the size given.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&timeout as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0);
            Sniffer(fd)
        }

        /// The first frame received (not sent) on the interface within 5 s that `want` accepts.
        fn incoming(&self, what: &str, want: impl Fn(&[u8]) -> bool) -> Vec<u8> {
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut buf = vec![0u8; 65536];
            while Instant::now() < deadline {
                // SAFETY: sockaddr_ll is plain data; zeroed is valid.
                let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                // SAFETY: `buf` and `from` are valid for the lengths given.
                let n = unsafe {
                    libc::recvfrom(
                        self.0.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                        (&mut from as *mut libc::sockaddr_ll).cast(),
                        &mut from_len,
                    )
                };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    assert!(
                        matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ),
                        "sniffer recv: {e}"
                    );
                    continue;
                }
                let frame = &buf[..n as usize];
                if from.sll_pkttype != libc::PACKET_OUTGOING && want(frame) {
                    return frame.to_vec();
                }
            }
            panic!("no {what} seen within 5 s");
        }
    }

    /// The TCP segment in `frame` (untagged Ethernet, IPv4), if it is one.
    fn tcp_seen(frame: &[u8]) -> Option<TcpSeen> {
        let p = SlicedPacket::from_ethernet(frame).ok()?;
        let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Tcp(tcp))) = (&p.net, &p.transport)
        else {
            return None;
        };
        let flags = tcp.header_slice().get(13).copied()?;
        Some(TcpSeen {
            src: IpAddr::V4(ip.header().source_addr()),
            dst: IpAddr::V4(ip.header().destination_addr()),
            src_port: tcp.source_port(),
            dst_port: tcp.destination_port(),
            seq: tcp.sequence_number(),
            ack: tcp.acknowledgment_number(),
            flags,
            payload_len: tcp.payload().len() as u32,
        })
    }

    const SERVER: &str = r#"
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.200.0.2", 7777))
s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
c.settimeout(8)
data = b""
while len(data) < 5:
    d = c.recv(100)
    if not d:
        break
    data += d
print("got", len(data), flush=True)
try:
    print("data" if c.recv(100) else "eof", flush=True)
except ConnectionResetError:
    print("reset", flush=True)
except socket.timeout:
    print("timeout", flush=True)
"#;

    const CLIENT: &str = r#"
import socket
c = socket.create_connection(("10.200.0.2", 7777), timeout=8)
c.sendall(b"hello")
print("sent", flush=True)
try:
    print("data" if c.recv(100) else "eof", flush=True)
except ConnectionResetError:
    print("reset", flush=True)
except socket.timeout:
    print("timeout", flush=True)
"#;

    /// A real TCP connection between two namespaces, torn down by the two forged resets: the
    /// one spoofed from the server goes out of the server-side veth to the client, the one
    /// spoofed from the client out of the client-side veth to the server. Both ends must see
    /// ECONNRESET, and the server-side sniffer must receive the second reset byte for byte.
    #[test]
    fn forged_resets_tear_down_a_real_connection() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipping forged_resets_tear_down_a_real_connection: needs root (network namespaces, CAP_NET_RAW)");
            return;
        }
        let lab = Lab::new();
        let (server_if, client_if) = (lab.server_if.clone(), lab.client_if.clone());
        let (sniffer, to_client) = lab.within(&lab.server_ns, move || {
            (Sniffer::open(&server_if), Injector::open(&server_if))
        });
        let to_client = to_client.expect("injector in the server namespace");
        let to_server = lab
            .within(&lab.client_ns, move || Injector::open(&client_if))
            .expect("injector in the client namespace");
        assert_eq!(to_server.iface(), lab.client_if);

        let server = lab.python(&lab.server_ns, SERVER);
        assert_eq!(server.line("server"), "listening");
        let client = lab.python(&lab.client_ns, CLIENT);
        assert_eq!(client.line("client"), "sent");
        assert_eq!(server.line("server"), "got 5");

        // The client's data segment, as a mirror port would have shown it.
        let client_ip: IpAddr = CLIENT_IP.parse().unwrap();
        let data = sniffer.incoming("client data segment", |f| {
            tcp_seen(f)
                .is_some_and(|s| s.src == client_ip && s.dst_port == PORT && s.payload_len == 5)
        });
        let seen = tcp_seen(&data).unwrap();
        let l2 = L2Header::from_frame(&data, 14).expect("plain Ethernet header");

        let mut frame = Vec::new();
        tcp_reset(&l2, &seen, Toward::Sender, &mut frame);
        to_client
            .send(&frame)
            .expect("send the reset to the client");
        assert_eq!(
            client.line("client"),
            "reset",
            "client did not see ECONNRESET"
        );

        tcp_reset(&l2, &seen, Toward::Receiver, &mut frame);
        to_server
            .send(&frame)
            .expect("send the reset to the server");
        let arrived = sniffer.incoming("forged reset", |f| f == frame.as_slice());
        assert_eq!(arrived, frame);
        assert_eq!(
            server.line("server"),
            "reset",
            "server did not see ECONNRESET"
        );
    }
}
