//! AF_XDP capture: one XDP socket bound to one RX queue of one interface (xsk-rs over libxdp).
//!
//! libxdp attaches its redirect program to the interface when the first socket binds and
//! detaches it when the last one closes. Every packet arriving on a bound queue goes to the
//! socket and never reaches the host stack (ARP included): bind only a capture (mirror/SPAN)
//! interface. Open one source per queue ([`queue_count`]), one after another, and drop each in
//! the network namespace it was opened in: libxdp detaches through netlink in the calling
//! thread's namespace. A process killed with its socket open leaves the program attached
//! (`ip link set DEV xdp off` removes it); the next open reuses it.
//!
//! Drops in [`SourceCounters::drops`] are the socket's `XDP_STATISTICS` `rx_dropped` (no free
//! UMEM frame for a packet in copy mode, or a packet longer than a frame) plus `rx_ring_full`
//! (the worker fell behind). `rx_fill_ring_empty_descs` is left out: in copy mode the packets it
//! refers to are already in `rx_dropped`, and in zero-copy mode it counts failed driver refills,
//! not packets (the driver counts those drops, see `ethtool -S`).
//!
//! Privileges: CAP_NET_RAW (socket), CAP_NET_ADMIN + CAP_BPF + CAP_SYS_ADMIN (libxdp loads the
//! program and finds it again by id for further queues), CAP_PERFMON for libxdp's dispatcher,
//! and CAP_IPC_LOCK, or else the UMEM (`frames * frame_size`) is charged to RLIMIT_MEMLOCK.

use std::error::Error;
use std::ffi::CString;
use std::io;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vigil_parsers::LinkType;
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, QueueSize, SocketConfig, UmemConfig, XdpFlags,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use super::{Frame, LiveError, LiveSource, SourceCounters};

/// Where the XDP program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Native, falling back to SKB when the driver refuses native mode.
    #[default]
    Auto,
    /// In the driver (`ip link` shows `xdp`); needed for zero-copy.
    Native,
    /// Generic, after the kernel has built an skb (`xdpgeneric`): works on any interface.
    Skb,
}

/// How frames reach the UMEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpCopy {
    /// Zero-copy where the driver supports it, else copy (the kernel decides at bind time).
    #[default]
    Auto,
    Copy,
    /// Fails where the driver lacks it (veth, most virtual interfaces).
    ZeroCopy,
}

#[derive(Debug, Clone)]
pub struct AfXdpConfig {
    pub iface: String,
    pub queue: u32,
    /// UMEM frames; the fill and RX rings get the next power of two.
    pub frames: u32,
    /// 2048 or 4096 (a page). 256 bytes of each go to XDP headroom, so a 2048-byte frame holds
    /// frames up to 1792 bytes; longer ones are dropped and counted in `drops`.
    pub frame_size: u32,
    pub mode: XdpMode,
    pub copy: XdpCopy,
    /// Most frames handed over per `next_batch` call.
    pub batch: usize,
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        AfXdpConfig {
            iface: String::new(),
            queue: 0,
            frames: 4096,
            frame_size: 2048,
            mode: XdpMode::Auto,
            copy: XdpCopy::Auto,
            batch: 64,
        }
    }
}

/// Rebinding a queue fails with EBUSY until the previous socket's deferred teardown ran
/// (about 0.2 s), so binding is retried this long.
const BIND_RETRY_FOR: Duration = Duration::from_secs(2);
/// We never transmit, but libxdp always maps a TX and a completion ring.
const TX_RING: u32 = 64;

/// An AF_XDP socket on one queue, with its UMEM.
pub struct AfXdpSource {
    // Each queue holds a handle on the socket, which closes (and libxdp detaches its program)
    // when the last one is dropped.
    rx: RxQueue,
    fill: FillQueue,
    _comp: CompQueue,
    _tx: TxQueue,
    umem: Umem,
    umem_len: usize,
    /// Reused for every batch: no allocation per packet.
    rx_descs: Vec<FrameDesc>,
    /// Frames to give back to the kernel; capacity for every frame, so pushing never allocates.
    free: Vec<FrameDesc>,
    fd: RawFd,
    label: String,
    iface: String,
    mode: XdpMode,
    zero_copy: bool,
    packets: u64,
    bytes: u64,
    drops: u64,
}

impl std::fmt::Debug for AfXdpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfXdpSource")
            .field("label", &self.label)
            .field("mode", &self.mode)
            .field("zero_copy", &self.zero_copy)
            .finish_non_exhaustive()
    }
}

struct Bound {
    umem: Umem,
    descs: Vec<FrameDesc>,
    tx: TxQueue,
    rx: RxQueue,
    fill: FillQueue,
    comp: CompQueue,
}

impl AfXdpSource {
    pub fn open(cfg: &AfXdpConfig) -> Result<AfXdpSource, LiveError> {
        let iface = cfg.iface.as_str();
        let other = |reason: String| LiveError::Other {
            iface: iface.to_string(),
            reason,
        };
        if cfg.frame_size != 2048 && cfg.frame_size != 4096 {
            return Err(other(format!(
                "AF_XDP frame size {} (must be 2048 or 4096)",
                cfg.frame_size
            )));
        }
        let Some(frames) = NonZeroU32::new(cfg.frames).filter(|f| f.get() <= 1 << 20) else {
            return Err(other(format!(
                "AF_XDP frame count {} (must be 1 to 1048576)",
                cfg.frames
            )));
        };
        if cfg.copy == XdpCopy::ZeroCopy && cfg.mode == XdpMode::Skb {
            return Err(other(
                "AF_XDP zero-copy needs native XDP mode, not skb".into(),
            ));
        }
        ifindex(iface)?;
        c_logs::route();
        if let Ok(n) = queue_count(iface) {
            if cfg.queue >= n {
                return Err(other(format!(
                    "queue {} is not in use: {n} RX queue(s) active (ethtool -l; raise with ethtool -L)",
                    cfg.queue
                )));
            }
        }
        let name: Interface = iface.parse().map_err(|_| LiveError::NoSuchInterface {
            iface: iface.into(),
        })?;

        let copy_flag = match cfg.copy {
            XdpCopy::Auto => BindFlags::empty(),
            XdpCopy::Copy => BindFlags::XDP_COPY,
            XdpCopy::ZeroCopy => BindFlags::XDP_ZEROCOPY,
        };
        let attempts: &[(XdpMode, XdpFlags, BindFlags)] = match cfg.mode {
            XdpMode::Native => &[(XdpMode::Native, XdpFlags::XDP_FLAGS_DRV_MODE, copy_flag)],
            XdpMode::Skb => &[(
                XdpMode::Skb,
                XdpFlags::XDP_FLAGS_SKB_MODE,
                BindFlags::XDP_COPY,
            )],
            XdpMode::Auto if cfg.copy == XdpCopy::ZeroCopy => {
                &[(XdpMode::Native, XdpFlags::XDP_FLAGS_DRV_MODE, copy_flag)]
            }
            XdpMode::Auto => &[
                (XdpMode::Native, XdpFlags::XDP_FLAGS_DRV_MODE, copy_flag),
                (
                    XdpMode::Skb,
                    XdpFlags::XDP_FLAGS_SKB_MODE,
                    BindFlags::XDP_COPY,
                ),
            ],
        };
        let ring = QueueSize::new(frames.get().next_power_of_two())
            .map_err(|e| other(format!("AF_XDP ring size: {e}")))?;
        let umem_cfg = UmemConfig::builder()
            .frame_size(FrameSize::new(cfg.frame_size).map_err(|e| other(e.to_string()))?)
            .fill_queue_size(ring)
            .comp_queue_size(QueueSize::new(TX_RING).map_err(|e| other(e.to_string()))?)
            .build()
            .map_err(|e| other(format!("AF_XDP UMEM config: {e}")))?;
        let umem_len = frames.get() as usize * cfg.frame_size as usize;

        let mut last_err = None;
        let mut bound = None;
        for (i, &(mode, xdp_flags, bind_flags)) in attempts.iter().enumerate() {
            let sock_cfg = SocketConfig::builder()
                .rx_queue_size(ring)
                .tx_queue_size(QueueSize::new(TX_RING).map_err(|e| other(e.to_string()))?)
                .xdp_flags(xdp_flags)
                .bind_flags(bind_flags | BindFlags::XDP_USE_NEED_WAKEUP)
                .build();
            match bind(cfg, &name, umem_cfg, frames, umem_len, sock_cfg) {
                Ok(b) => {
                    bound = Some((mode, b));
                    break;
                }
                Err(e @ (BindError::Fatal(_) | BindError::Busy(_))) => {
                    return Err(e.into_live(cfg, mode));
                }
                Err(e) if i + 1 < attempts.len() => {
                    tracing::debug!(iface, queue = cfg.queue, ?mode, error = %e,
                        "AF_XDP bind failed, trying the next mode");
                    last_err = Some((mode, e));
                }
                Err(e) => last_err = Some((mode, e)),
            }
        }
        let Some((mode, b)) = bound else {
            let (mode, e) =
                last_err.unwrap_or((cfg.mode, BindError::Other(io::ErrorKind::Other.into())));
            return Err(e.into_live(cfg, mode));
        };
        let Bound {
            umem,
            descs,
            tx,
            rx,
            mut fill,
            comp,
        } = b;
        let fd = rx.fd().as_raw_fd();
        let zero_copy = socket_zero_copy(fd).unwrap_or(false);
        let mut free = Vec::with_capacity(descs.len());
        free.extend_from_slice(&descs);
        // SAFETY: the descriptors are this UMEM's frames, fresh from Umem::new and handed to
        // nobody else; the fill ring holds every frame (ring size >= frame count).
        let given = unsafe { fill.produce(&free) };
        free.drain(..given);
        tracing::info!(
            iface,
            queue = cfg.queue,
            ?mode,
            zero_copy,
            frames = frames.get(),
            frame_size = cfg.frame_size,
            "AF_XDP socket bound"
        );
        Ok(AfXdpSource {
            rx,
            fill,
            _comp: comp,
            _tx: tx,
            umem,
            umem_len,
            rx_descs: vec![FrameDesc::default(); cfg.batch.clamp(1, frames.get() as usize)],
            free,
            fd,
            label: format!("{iface}/q{}", cfg.queue),
            iface: iface.to_string(),
            mode,
            zero_copy,
            packets: 0,
            bytes: 0,
            drops: 0,
        })
    }

    /// Whether the kernel bound the socket in zero-copy mode (read back from the socket).
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// The XDP mode in use: `Native` or `Skb`.
    pub fn xdp_mode(&self) -> XdpMode {
        self.mode
    }

    fn refill(&mut self) -> Result<(), LiveError> {
        if self.free.is_empty() {
            return Ok(());
        }
        // SAFETY: `free` holds frames of this UMEM that the kernel has handed back (RX ring) and
        // no Frame borrows any more; each is given back once.
        let given = unsafe { self.fill.produce(&self.free) };
        self.free.drain(..given);
        if given > 0 && self.fill.needs_wakeup() {
            self.fill
                .wakeup(self.rx.fd_mut(), 0)
                .map_err(|source| self.io("waking the driver", source))?;
        }
        Ok(())
    }

    /// Waits for the RX ring; false on timeout.
    fn wait(&mut self, timeout: Duration) -> Result<bool, LiveError> {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // Rounded up so that a sub-millisecond timeout still sleeps instead of spinning.
        let ms = i32::try_from(timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd, and nfds is 1.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(self.io("poll", e));
        }
        if rc == 0 || pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            // The kernel unbinds the socket and sets ENETDOWN when the interface goes away;
            // poll then just times out, so a timeout is when to look.
            self.check_socket_error()?;
        }
        Ok(pfd.revents & libc::POLLIN != 0)
    }

    fn check_socket_error(&self) -> Result<(), LiveError> {
        let mut err: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `err` and `len` are valid for writes and `len` is the size of `err`.
        let rc = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(self.io("reading socket error", io::Error::last_os_error()));
        }
        match err {
            0 => Ok(()),
            libc::ENETDOWN | libc::ENODEV | libc::ENXIO => Err(LiveError::Down {
                iface: self.iface.clone(),
            }),
            e => Err(self.io("socket error", io::Error::from_raw_os_error(e))),
        }
    }

    fn io(&self, what: &'static str, source: io::Error) -> LiveError {
        LiveError::Io {
            iface: self.iface.clone(),
            what,
            source,
        }
    }
}

impl LiveSource for AfXdpSource {
    fn link_type(&self) -> LinkType {
        LinkType::Ethernet
    }

    fn next_batch(
        &mut self,
        timeout: Duration,
        on_frame: &mut dyn FnMut(Frame<'_>),
    ) -> Result<usize, LiveError> {
        self.refill()?;
        // SAFETY: consume only overwrites the descriptors, with frames of this socket's UMEM.
        let mut n = unsafe { self.rx.consume(&mut self.rx_descs) };
        if n == 0 {
            if !self.wait(timeout)? {
                return Ok(0);
            }
            // SAFETY: as above.
            n = unsafe { self.rx.consume(&mut self.rx_descs) };
        }
        let ts_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let mut handed = 0;
        for desc in &self.rx_descs[..n] {
            let len = desc.lengths().data();
            if desc
                .addr()
                .checked_add(len)
                .is_none_or(|end| end > self.umem_len)
            {
                tracing::warn!(source = %self.label, addr = desc.addr(), len, "bad AF_XDP descriptor");
                continue;
            }
            // SAFETY: the descriptor came from this socket's RX ring, so the kernel is done
            // with the frame until it goes back on the fill ring after this loop; it lies in
            // the UMEM (checked above); the borrow ends with the callback.
            let data = unsafe { self.umem.data(desc) }.contents();
            on_frame(Frame {
                ts_ns,
                data,
                wire_len: u32::try_from(len).unwrap_or(u32::MAX),
            });
            handed += 1;
            self.bytes += len as u64;
        }
        self.packets += handed as u64;
        self.free.extend_from_slice(&self.rx_descs[..n]);
        self.refill()?;
        Ok(handed)
    }

    fn counters(&mut self) -> SourceCounters {
        match self.rx.fd().xdp_statistics() {
            Ok(s) => {
                tracing::trace!(source = %self.label, rx_dropped = s.rx_dropped(),
                    rx_ring_full = s.rx_ring_full(), fill_ring_empty = s.rx_fill_ring_empty_descs(),
                    invalid = s.rx_invalid_descs(), "XDP_STATISTICS");
                self.drops = s.rx_dropped() + s.rx_ring_full();
            }
            Err(e) => tracing::debug!(source = %self.label, error = %e, "XDP_STATISTICS failed"),
        }
        SourceCounters {
            packets: self.packets,
            bytes: self.bytes,
            drops: self.drops,
        }
    }

    fn label(&self) -> &str {
        &self.label
    }
}

enum BindError {
    /// No use trying another mode.
    Fatal(LiveError),
    /// Still EBUSY when the retries ran out.
    Busy(io::Error),
    Other(io::Error),
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::Fatal(e) => e.fmt(f),
            BindError::Busy(e) | BindError::Other(e) => e.fmt(f),
        }
    }
}

impl BindError {
    fn into_live(self, cfg: &AfXdpConfig, mode: XdpMode) -> LiveError {
        let iface = cfg.iface.clone();
        let q = cfg.queue;
        match self {
            BindError::Fatal(e) => e,
            BindError::Busy(e) => LiveError::Other {
                iface,
                reason: format!(
                    "queue {q} still busy after {BIND_RETRY_FOR:?} ({e}): another AF_XDP socket is \
                     bound to it, or a foreign XDP program is attached (ip link show)"
                ),
            },
            BindError::Other(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => LiveError::Other {
                iface,
                reason: match cfg.copy {
                    XdpCopy::ZeroCopy => {
                        format!("queue {q}: driver has no AF_XDP zero-copy ({e}); use copy mode")
                    }
                    _ => format!("queue {q}: {mode:?} XDP mode not supported ({e})"),
                },
            },
            BindError::Other(source) => LiveError::Io {
                iface,
                what: "binding the AF_XDP socket",
                source,
            },
        }
    }
}

fn bind(
    cfg: &AfXdpConfig,
    name: &Interface,
    umem_cfg: UmemConfig,
    frames: NonZeroU32,
    umem_len: usize,
    sock_cfg: SocketConfig,
) -> Result<Bound, BindError> {
    let iface = cfg.iface.as_str();
    let deadline = Instant::now() + BIND_RETRY_FOR;
    let mut backoff = Duration::from_millis(10);
    loop {
        // A fresh UMEM per try: libxdp leaves a failed bind's socket bound inside the UMEM.
        let (umem, descs) = Umem::new(umem_cfg, frames, false)
            .map_err(|e| BindError::Fatal(umem_error(iface, umem_len, os_error(&e), &e)))?;
        // SAFETY: the UMEM is new and used by this socket only, so the (interface, queue) pair
        // is not bound from it already.
        let res = unsafe { Socket::new(sock_cfg, &umem, name, cfg.queue) };
        let e = match res {
            Ok((tx, rx, Some((fill, comp)))) => {
                return Ok(Bound {
                    umem,
                    descs,
                    tx,
                    rx,
                    fill,
                    comp,
                });
            }
            Ok((_, _, None)) => {
                return Err(BindError::Fatal(LiveError::Other {
                    iface: iface.into(),
                    reason: "libxdp returned no fill ring for a new UMEM".into(),
                }));
            }
            Err(e) => os_error(&e).unwrap_or_else(|| io::Error::other(e.to_string())),
        };
        drop(umem);
        match e.raw_os_error() {
            Some(libc::EBUSY) if Instant::now() + backoff < deadline => {
                tracing::debug!(
                    iface,
                    queue = cfg.queue,
                    ?backoff,
                    "AF_XDP queue busy, retrying"
                );
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(200));
            }
            Some(libc::EBUSY) => return Err(BindError::Busy(e)),
            Some(libc::ENODEV) => {
                return Err(BindError::Fatal(LiveError::NoSuchInterface {
                    iface: iface.into(),
                }));
            }
            Some(libc::EPERM | libc::EACCES) => {
                return Err(BindError::Fatal(LiveError::Other {
                    iface: iface.into(),
                    reason: format!(
                        "binding the AF_XDP socket: {e}: loading the XDP program needs CAP_NET_ADMIN, \
                         CAP_BPF and CAP_SYS_ADMIN (and CAP_PERFMON for libxdp's dispatcher)"
                    ),
                }));
            }
            _ => return Err(BindError::Other(e)),
        }
    }
}

fn umem_error(iface: &str, umem_len: usize, code: Option<io::Error>, e: &dyn Error) -> LiveError {
    let errno = code.as_ref().and_then(io::Error::raw_os_error);
    let cause = code.map_or_else(|| e.to_string(), |c| c.to_string());
    let reason = match errno {
        Some(libc::ENOBUFS | libc::EPERM) => {
            let limit = match memlock_limit() {
                Some(libc::RLIM_INFINITY) => "unlimited".to_string(),
                Some(l) => format!("{} KiB", l / 1024),
                None => "unknown".to_string(),
            };
            format!(
                "cannot register the {} KiB AF_XDP UMEM ({cause}): without CAP_IPC_LOCK it is \
                 charged to RLIMIT_MEMLOCK (soft limit {limit}, shared by all of the user's \
                 processes); grant CAP_IPC_LOCK, raise LimitMEMLOCK or lower the frame count \
                 (an AF_XDP socket also needs CAP_NET_RAW)",
                umem_len / 1024
            )
        }
        _ => format!("creating the AF_XDP UMEM: {e}: {cause}"),
    };
    LiveError::Other {
        iface: iface.into(),
        reason,
    }
}

/// The OS error at the bottom of an xsk-rs error, which only carries a reason string on top.
fn os_error(e: &(dyn Error + 'static)) -> Option<io::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(code) = err
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            return Some(io::Error::from_raw_os_error(code));
        }
        cur = err.source();
    }
    None
}

fn memlock_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is valid for writes.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    (rc == 0).then_some(lim.rlim_cur)
}

fn socket_zero_copy(fd: RawFd) -> Option<bool> {
    let mut opts: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: `opts` and `len` are valid for writes and `len` is the size of `opts`
    // (struct xdp_options is one u32).
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libc::XDP_OPTIONS,
            (&mut opts as *mut u32).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(opts & libc::XDP_OPTIONS_ZEROCOPY != 0)
}

fn ifindex(iface: &str) -> Result<u32, LiveError> {
    let missing = || LiveError::NoSuchInterface {
        iface: iface.into(),
    };
    if iface.is_empty() || iface.len() >= libc::IFNAMSIZ {
        return Err(missing());
    }
    let c = CString::new(iface).map_err(|_| missing())?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(missing())
    } else {
        Ok(idx)
    }
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// struct ethtool_channels.
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// RX queues in use on `iface` (ethtool's current combined + rx channels): AF_XDP can bind
/// queues `0..n`. Interfaces without channel support (e.g. bridges, lo) count as one queue.
pub fn queue_count(iface: &str) -> Result<u32, LiveError> {
    ifindex(iface)?;
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    let mut name = [0 as libc::c_char; libc::IFNAMSIZ];
    for (d, s) in name.iter_mut().zip(iface.bytes()) {
        *d = s as libc::c_char;
    }
    let mut req = libc::ifreq {
        ifr_name: name,
        ifr_ifru: libc::__c_anonymous_ifr_ifru {
            ifru_data: (&mut ch as *mut EthtoolChannels).cast(),
        },
    };
    // Any socket reaches the device ioctls; an unbound Unix one needs no address or privilege,
    // and belongs to the calling thread's network namespace like the interface lookup.
    let sock = UnixDatagram::unbound().map_err(|source| LiveError::Io {
        iface: iface.into(),
        what: "socket for ethtool",
        source,
    })?;
    // SAFETY: `req` is a valid ifreq whose name is NUL-terminated (ifindex checked the length)
    // and whose data pointer is a live ethtool_channels for the kernel to fill in.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
    if rc == 0 {
        let n = ch.combined_count.saturating_add(ch.rx_count);
        return Ok(n.max(1));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENODEV) => Err(LiveError::NoSuchInterface {
            iface: iface.into(),
        }),
        Some(libc::EOPNOTSUPP) => Ok(1),
        _ => Err(LiveError::Io {
            iface: iface.into(),
            what: "ETHTOOL_GCHANNELS",
            source: e,
        }),
    }
}

/// enum netdev_xdp_act in linux/netdev.h.
const NETDEV_XDP_ACT_XSK_ZEROCOPY: u64 = 8;

/// Whether the driver advertises AF_XDP zero-copy (kernel 6.3+ XDP feature flags over
/// netlink). None when unknown: older kernel, no XDP support at all, or the query failed.
pub fn supports_zero_copy(iface: &str) -> Option<bool> {
    let idx = i32::try_from(ifindex(iface).ok()?).ok()?;
    c_logs::route();
    // SAFETY: bpf_xdp_query_opts is plain integers, for which all zeroes is valid.
    let mut opts: libxdp_sys::bpf_xdp_query_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<libxdp_sys::bpf_xdp_query_opts>();
    // SAFETY: `opts` is a valid bpf_xdp_query_opts with `sz` set, live for the call.
    let rc = unsafe { libxdp_sys::bpf_xdp_query(idx, 0, &mut opts) };
    if rc != 0 || opts.feature_flags == 0 {
        return None;
    }
    Some(opts.feature_flags & NETDEV_XDP_ACT_XSK_ZEROCOPY != 0)
}

/// libbpf and libxdp print to stderr; their messages go to tracing instead (INFO, such as
/// "No bpffs found", at debug level). Only on x86_64, where a `va_list` argument is a pointer
/// that can be handed on to vsnprintf as it came.
#[cfg(target_arch = "x86_64")]
mod c_logs {
    use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
    use std::sync::Once;

    extern "C" {
        fn vsnprintf(buf: *mut c_char, size: usize, fmt: *const c_char, ap: *mut c_void) -> c_int;
    }

    /// # Safety
    /// `fmt` and `ap` as the library passes them to its print callback.
    unsafe fn emit(lib: &'static str, level: c_uint, fmt: *const c_char, ap: *mut c_void) -> c_int {
        let mut buf = [0 as c_char; 512];
        // SAFETY: `buf` is writable for its length, vsnprintf truncates and NUL-terminates;
        // `fmt` and `ap` are the library's own printf arguments, used once.
        let n = unsafe { vsnprintf(buf.as_mut_ptr(), buf.len(), fmt, ap) };
        if n < 0 {
            return n;
        }
        // SAFETY: vsnprintf left a NUL-terminated string in `buf`.
        let text = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
        let msg = text.trim_end();
        match level {
            // Without bpffs libxdp loads a single program instead of its dispatcher, which is
            // fine for capture: not worth a warning on every socket.
            0 if msg.contains("bpffs") => tracing::info!(lib, "{msg}"),
            0 => tracing::warn!(lib, "{msg}"),
            1 => tracing::debug!(lib, "{msg}"),
            _ => tracing::trace!(lib, "{msg}"),
        }
        n
    }

    unsafe extern "C" fn libbpf_print(
        level: libbpf_sys::libbpf_print_level,
        fmt: *const c_char,
        ap: *mut libbpf_sys::__va_list_tag,
    ) -> c_int {
        // SAFETY: called by libbpf with its printf arguments.
        unsafe { emit("libbpf", level, fmt, ap.cast()) }
    }

    unsafe extern "C" fn libxdp_print(
        level: libxdp_sys::libxdp_print_level,
        fmt: *const c_char,
        ap: *mut libxdp_sys::__va_list_tag,
    ) -> c_int {
        // SAFETY: called by libxdp with its printf arguments.
        unsafe { emit("libxdp", level, fmt, ap.cast()) }
    }

    pub(super) fn route() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            // SAFETY: both callbacks match the libraries' print function types and stay valid
            // for the life of the process.
            unsafe {
                libbpf_sys::libbpf_set_print(Some(libbpf_print));
                libxdp_sys::libxdp_set_print(Some(libxdp_print));
            }
        });
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod c_logs {
    pub(super) fn route() {}
}
