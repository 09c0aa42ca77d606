//! AF_XDP capture on a real veth pair between two network namespaces (no mocks): exact delivery
//! in native and SKB copy mode, drop accounting, immediate rebinding, zero-copy refusal,
//! queue bounds and two queues, interface removal, and the memlock error. Needs root; skips
//! otherwise.
//!
//! A source is opened, used and dropped on one thread that has entered the receiving
//! namespace: the socket belongs to the namespace it was created in, and libxdp detaches its
//! program through netlink in the current thread's namespace.

use std::collections::HashSet;
use std::fs::File;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vigil::capture::af_xdp::{
    queue_count, supports_zero_copy, AfXdpConfig, AfXdpSource, XdpCopy, XdpMode,
};
use vigil::capture::{LiveError, LiveSource};

const SENDER_IP: &str = "10.201.0.1";
const RECEIVER_IP: &str = "10.201.0.2";
const RECEIVER_MAC: &str = "02:00:0a:c9:00:02";
const PORT: u16 = 9;
const MAGIC: &[u8] = b"vigil-xdp-test ";

/// The namespace tests run one at a time, so that exact counts and timings are not disturbed
/// by each other's load on a small machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn skip() -> bool {
    // Shown with --nocapture or on failure; RUST_LOG overrides.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("vigil::capture=debug,warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
    if !is_root() {
        eprintln!("SKIPPED: AF_XDP capture tests need root (netns, veth, XDP)");
        return true;
    }
    false
}

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces joined by veth xa0 (sender) <-> xb0 (receiver); deleted on drop.
struct Pair {
    a: String,
    b: String,
}

impl Pair {
    fn new() -> Pair {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let pair = Pair {
            a: format!("vigil-xdp-{pid}-{n}-a"),
            b: format!("vigil-xdp-{pid}-{n}-b"),
        };
        let (a, b) = (pair.a.as_str(), pair.b.as_str());
        run(&["ip", "netns", "add", a]);
        run(&["ip", "netns", "add", b]);
        // No IPv6 router solicitations or DAD between the test's own frames.
        for ns in [a, b] {
            run(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]);
        }
        run(&[
            "ip",
            "link",
            "add",
            "xa0",
            "numtxqueues",
            "2",
            "numrxqueues",
            "2",
            "netns",
            a,
            "type",
            "veth",
            "peer",
            "name",
            "xb0",
            "numtxqueues",
            "2",
            "numrxqueues",
            "2",
            "netns",
            b,
        ]);
        // One queue, so that every flow reaches the socket on queue 0.
        set_queues(&pair, 1);
        run(&["ip", "-n", b, "link", "set", "xb0", "address", RECEIVER_MAC]);
        run(&[
            "ip",
            "-n",
            a,
            "addr",
            "add",
            &format!("{SENDER_IP}/24"),
            "dev",
            "xa0",
        ]);
        run(&[
            "ip",
            "-n",
            b,
            "addr",
            "add",
            &format!("{RECEIVER_IP}/24"),
            "dev",
            "xb0",
        ]);
        run(&["ip", "-n", a, "link", "set", "xa0", "up"]);
        run(&["ip", "-n", b, "link", "set", "xb0", "up"]);
        // The receiver's ARP replies would go to the XDP socket too.
        run(&[
            "ip",
            "-n",
            a,
            "neigh",
            "replace",
            RECEIVER_IP,
            "lladdr",
            RECEIVER_MAC,
            "dev",
            "xa0",
            "nud",
            "permanent",
        ]);
        pair
    }
}

/// Sets both ends of the veth to `n` RX and TX queues.
fn set_queues(pair: &Pair, n: u32) {
    let n = n.to_string();
    for (ns, dev) in [(&pair.a, "xa0"), (&pair.b, "xb0")] {
        run(&[
            "ip", "netns", "exec", ns, "ethtool", "-L", dev, "rx", &n, "tx", &n,
        ]);
    }
}

/// The XDP attach mode `ip link` shows for xb0 in namespace `ns` ("" for none).
fn xdp_attached(ns: &str) -> String {
    let out = run(&["ip", "-n", ns, "link", "show", "xb0"]);
    ["xdpgeneric", "xdpoffload", "xdp"]
        .into_iter()
        .find(|m| out.contains(&format!(" {m} ")))
        .unwrap_or("")
        .to_string()
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs `f` on a new thread inside namespace `ns`, failing the test after `limit`.
fn in_netns<T: Send + 'static>(
    ns: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let path = format!("/var/run/netns/{ns}");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: a valid namespace fd; only this thread changes namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|e| panic!("thread in {ns}: {e} (timed out or panicked)"))
}

/// Sends `count` UDP datagrams with payload MAGIC + index from `flows` source ports, paced so
/// that the veth never drops.
fn send(pair: &Pair, first: u32, count: u32, flows: u16) {
    in_netns(&pair.a, Duration::from_secs(30), move || {
        let socks: Vec<UdpSocket> = (0..flows)
            .map(|_| UdpSocket::bind((SENDER_IP, 0)).unwrap())
            .collect();
        for i in first..first + count {
            let mut payload = MAGIC.to_vec();
            payload.extend_from_slice(format!("{i:08}").as_bytes());
            let s = &socks[i as usize % socks.len()];
            s.send_to(&payload, (RECEIVER_IP, PORT)).unwrap();
            if i % 64 == 63 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
}

/// The test index of a frame sent by `send`, None for any other frame.
fn test_index(frame: &[u8]) -> Option<u32> {
    if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
        return None;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let udp = frame.get(14 + ihl..)?;
    if udp.get(2..4)? != PORT.to_be_bytes() {
        return None;
    }
    std::str::from_utf8(udp.get(8..)?.strip_prefix(MAGIC)?)
        .ok()?
        .parse()
        .ok()
}

#[derive(Debug, Default)]
struct Received {
    indices: Vec<u32>,
    others: usize,
    bytes: u64,
    ts_ok: bool,
}

/// Reads from `src` until `want` test frames arrived, or nothing came for `idle`.
fn collect(src: &mut AfXdpSource, want: usize, idle: Duration, out: &mut Received) {
    let mut last = Instant::now();
    out.ts_ok = true;
    while out.indices.len() < want && last.elapsed() < idle {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let n = src
            .next_batch(Duration::from_millis(50), &mut |f| {
                assert_eq!(f.wire_len as usize, f.data.len());
                out.bytes += f.data.len() as u64;
                out.ts_ok &= f.ts_ns >= before && f.ts_ns < before + 10_000_000_000;
                match test_index(f.data) {
                    Some(i) => out.indices.push(i),
                    None => out.others += 1,
                }
            })
            .unwrap();
        if n > 0 {
            last = Instant::now();
        }
    }
}

fn cfg(mode: XdpMode, copy: XdpCopy) -> AfXdpConfig {
    AfXdpConfig {
        iface: "xb0".into(),
        mode,
        copy,
        ..AfXdpConfig::default()
    }
}

/// Opens a source in the receiving namespace, lets the main thread send, collects `want`
/// frames; returns what arrived, the counters and what `check` saw while the socket was open.
fn receive<C: Send + 'static>(
    pair: &Pair,
    cfg: AfXdpConfig,
    want: usize,
    sender: impl FnOnce(),
    check: impl FnOnce(&AfXdpSource) -> C + Send + 'static,
) -> (Received, vigil::capture::SourceCounters, C) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    let ns = pair.b.clone();
    std::thread::spawn(move || {
        let res = in_netns(&ns, Duration::from_secs(60), move || {
            let mut src = AfXdpSource::open(&cfg).unwrap();
            let seen = check(&src);
            ready_tx.send(()).unwrap();
            go_rx.recv_timeout(Duration::from_secs(30)).unwrap();
            let mut got = Received::default();
            collect(&mut src, want, Duration::from_secs(3), &mut got);
            // Late or duplicate frames would show up here.
            collect(&mut src, usize::MAX, Duration::from_millis(300), &mut got);
            (got, src.counters(), seen)
        });
        let _ = done_tx.send(res);
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("source did not open");
    sender();
    go_tx.send(()).unwrap();
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("receiver timed out")
}

fn assert_exact(got: &Received, range: std::ops::Range<u32>) {
    let unique: HashSet<u32> = got.indices.iter().copied().collect();
    assert_eq!(unique.len(), got.indices.len(), "duplicate frames");
    assert_eq!(
        unique,
        range.collect::<HashSet<u32>>(),
        "missing or foreign frames"
    );
    assert_eq!(got.others, 0, "unexpected frames");
    assert!(got.ts_ok, "timestamps not from the wall clock");
}

#[test]
fn missing_interface_is_reported() {
    for name in ["vigil-none0", "a-name-longer-than-ifnamsiz", "", "x\0y"] {
        let res = AfXdpSource::open(&AfXdpConfig {
            iface: name.into(),
            ..AfXdpConfig::default()
        });
        assert!(
            matches!(res, Err(LiveError::NoSuchInterface { .. })),
            "{name:?}: {res:?}"
        );
        assert!(matches!(
            queue_count(name),
            Err(LiveError::NoSuchInterface { .. })
        ));
        assert_eq!(supports_zero_copy(name), None);
    }
}

#[test]
fn delivers_every_frame_native_and_skb_copy() {
    if skip() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pair = Pair::new();
    const N: u32 = 2000;
    for (mode, shown) in [(XdpMode::Native, "xdp"), (XdpMode::Skb, "xdpgeneric")] {
        let started = Instant::now();
        let (got, counters, (zc, in_use, attached)) = receive(
            &pair,
            cfg(mode, XdpCopy::Copy),
            N as usize,
            || send(&pair, 0, N, 1),
            {
                let b = pair.b.clone();
                move |src: &AfXdpSource| (src.zero_copy(), src.xdp_mode(), xdp_attached(&b))
            },
        );
        eprintln!("{mode:?}: {counters:?} in {:?}", started.elapsed());
        assert_exact(&got, 0..N);
        assert!(!zc);
        assert_eq!(in_use, mode);
        assert_eq!(attached, shown);
        assert_eq!(counters.packets, u64::from(N));
        assert_eq!(counters.bytes, got.bytes);
        assert_eq!(counters.drops, 0);
        // Detached once the socket closed.
        assert_eq!(xdp_attached(&pair.b), "", "XDP program left attached");
    }
}

#[test]
fn drops_are_counted_once() {
    if skip() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pair = Pair::new();
    // 64 frames and no reading while 1000 datagrams arrive: every frame past the first 64
    // must show up as exactly one drop.
    const N: u32 = 1000;
    let small = AfXdpConfig {
        frames: 64,
        ..cfg(XdpMode::Auto, XdpCopy::Auto)
    };
    for mode in [XdpMode::Native, XdpMode::Skb] {
        let (got, counters, ()) = receive(
            &pair,
            AfXdpConfig {
                mode,
                ..small.clone()
            },
            64,
            || send(&pair, 0, N, 1),
            |_| (),
        );
        eprintln!("{mode:?} with 64 frames: {counters:?}");
        assert_eq!(got.others, 0);
        assert_eq!(got.indices.len(), 64);
        assert_eq!(counters.packets, 64);
        assert_eq!(counters.packets + counters.drops, u64::from(N));
    }
}

#[test]
fn reopening_a_queue_at_once_works() {
    if skip() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pair = Pair::new();
    let times = in_netns(&pair.b, Duration::from_secs(60), || {
        let c = cfg(XdpMode::Auto, XdpCopy::Auto);
        let mut times = Vec::new();
        let mut src = AfXdpSource::open(&c).unwrap();
        for _ in 0..3 {
            drop(src);
            let t = Instant::now();
            src = AfXdpSource::open(&c).unwrap();
            times.push(t.elapsed());
        }
        times
    });
    eprintln!("reopen times: {times:?}");
    assert!(times.iter().all(|t| *t < Duration::from_secs(2)));
    // And the reopened queue receives.
    let (got, _, ()) = receive(
        &pair,
        cfg(XdpMode::Auto, XdpCopy::Auto),
        100,
        || send(&pair, 0, 100, 1),
        |_| (),
    );
    assert_exact(&got, 0..100);
}

#[test]
fn zero_copy_is_refused_on_veth_and_auto_falls_back() {
    if skip() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pair = Pair::new();
    let (forced, auto, supports) = in_netns(&pair.b, Duration::from_secs(30), || {
        let forced = AfXdpSource::open(&cfg(XdpMode::Auto, XdpCopy::ZeroCopy)).map(|_| ());
        let auto = AfXdpSource::open(&cfg(XdpMode::Auto, XdpCopy::Auto))
            .map(|s| (s.zero_copy(), s.xdp_mode()));
        (forced, auto, supports_zero_copy("xb0"))
    });
    eprintln!("forced zero-copy: {forced:?}; auto: {auto:?}; advertised: {supports:?}");
    let err = forced.expect_err("zero-copy on veth").to_string();
    assert!(err.contains("zero-copy"), "{err}");
    assert_eq!(auto.unwrap(), (false, XdpMode::Native));
    assert_eq!(supports, Some(false));
    let skb_zc = AfXdpSource::open(&cfg(XdpMode::Skb, XdpCopy::ZeroCopy)).unwrap_err();
    assert!(matches!(skb_zc, LiveError::Other { .. }), "{skb_zc}");
}

#[test]
fn queue_bounds_and_two_queues() {
    if skip() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pair = Pair::new();
    let (count, err) = in_netns(&pair.b, Duration::from_secs(30), || {
        let q1 = AfXdpConfig {
            queue: 1,
            ..cfg(XdpMode::Auto, XdpCopy::Auto)
        };
        (
            queue_count("xb0").unwrap(),
            AfXdpSource::open(&q1).unwrap_err().to_string(),
        )
    });
    assert_eq!(count, 1);
    assert!(err.contains("not in use"), "{err}");

    set_queues(&pair, 2);
    const N: u32 = 2000;
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (closed_tx, closed_rx) = mpsc::channel::<()>();
    let ns = pair.b.clone();
    let receiver = std::thread::spawn(move || {
        in_netns(&ns, Duration::from_secs(60), move || {
            let n = queue_count("xb0").unwrap();
            let mut srcs: Vec<AfXdpSource> = (0..n)
                .map(|queue| {
                    AfXdpSource::open(&AfXdpConfig {
                        queue,
                        ..cfg(XdpMode::Auto, XdpCopy::Auto)
                    })
                    .unwrap()
                })
                .collect();
            ready_tx.send(n).unwrap();
            go_rx.recv_timeout(Duration::from_secs(30)).unwrap();
            let mut got: Vec<Received> = srcs.iter().map(|_| Received::default()).collect();
            let deadline = Instant::now() + Duration::from_secs(10);
            while got.iter().map(|g| g.indices.len()).sum::<usize>() < N as usize
                && Instant::now() < deadline
            {
                for (src, g) in srcs.iter_mut().zip(got.iter_mut()) {
                    collect(src, usize::MAX, Duration::from_millis(20), g);
                }
            }
            // With queue 0 closed, queue 1 still has the program and keeps receiving.
            drop(srcs.remove(0));
            closed_tx.send(()).unwrap();
            let mut after = Received::default();
            collect(&mut srcs[0], 1, Duration::from_secs(3), &mut after);
            (got, after)
        })
    });
    let n = ready_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(n, 2);
    send(&pair, 0, N, 16);
    go_tx.send(()).unwrap();
    closed_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    // Some of 16 flows hash to queue 1.
    send(&pair, N, 64, 16);
    let (got, after) = receiver.join().unwrap();
    let per_queue: Vec<usize> = got.iter().map(|g| g.indices.len()).collect();
    eprintln!(
        "per queue: {per_queue:?}; queue 1 after queue 0 closed: {}",
        after.indices.len()
    );
    let all = Received {
        indices: got.iter().flat_map(|g| g.indices.clone()).collect(),
        others: got.iter().map(|g| g.others).sum(),
        bytes: 0,
        ts_ok: got.iter().all(|g| g.ts_ok),
    };
    assert_exact(&all, 0..N);
    assert!(!after.indices.is_empty(), "queue 1 stopped with queue 0");
}

#[test]
fn removed_interface_gives_down() {
    if skip() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pair = Pair::new();
    let (ready_tx, ready_rx) = mpsc::channel();
    let ns = pair.b.clone();
    let receiver = std::thread::spawn(move || {
        in_netns(&ns, Duration::from_secs(30), move || {
            let mut src = AfXdpSource::open(&cfg(XdpMode::Auto, XdpCopy::Auto)).unwrap();
            ready_tx.send(()).unwrap();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                match src.next_batch(Duration::from_millis(100), &mut |_| {}) {
                    Ok(_) => {}
                    Err(e) => return Some((e.to_string(), matches!(e, LiveError::Down { .. }))),
                }
            }
            None
        })
    });
    ready_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    run(&["ip", "-n", &pair.b, "link", "del", "xb0"]);
    let res = receiver.join().unwrap();
    eprintln!("after removal: {res:?}");
    let (msg, down) = res.expect("no error within 5 s of removing the interface");
    assert!(down, "{msg}");
}

/// The memlock test's child: only does something when re-executed by `memlock_error_is_clear`.
#[test]
fn memlock_child() {
    if std::env::var_os("VIGIL_XDP_MEMLOCK_CHILD").is_none() {
        return;
    }
    let err = AfXdpSource::open(&cfg(XdpMode::Auto, XdpCopy::Auto)).unwrap_err();
    println!("CHILD-ERROR: {err}");
}

#[test]
fn memlock_error_is_clear() {
    if skip() {
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err()
        || Command::new("prlimit").arg("--version").output().is_err()
    {
        eprintln!("SKIPPED: memlock check needs setpriv and prlimit (util-linux)");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pair = Pair::new();
    // The default 8 MiB UMEM against a 1 MiB limit, without CAP_IPC_LOCK.
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.b,
            "prlimit",
            "--memlock=1048576:1048576",
        ])
        .args(["setpriv", "--bounding-set", "-ipc_lock", "--"])
        .arg(exe)
        .args([
            "--exact",
            "memlock_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("VIGIL_XDP_MEMLOCK_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("memlock child timed out");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("CHILD-ERROR: ").map(|(_, e)| e))
        .unwrap_or_else(|| panic!("no error line in {stdout}"));
    eprintln!("{line}");
    assert!(
        line.contains("RLIMIT_MEMLOCK") && line.contains("CAP_IPC_LOCK"),
        "{line}"
    );
}
