//! AF_PACKET capture: a TPACKET_V3 memory-mapped ring per socket, one socket per worker, all
//! of an interface's sockets in one `PACKET_FANOUT_HASH` group.
//!
//! The kernel spreads packets over the group by a symmetric flow hash, so both directions of a
//! connection reach the same worker; `PACKET_FANOUT_FLAG_DEFRAG` reassembles IPv4 fragments
//! before hashing, so a fragmented datagram meets the rest of its flow. The ring is read a block
//! at a time without copying; a block goes back to the kernel when the worker has handed all
//! its frames on.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{fence, Ordering};
use std::time::Duration;

use vigil_parsers::LinkType;

use super::{Frame, LiveError, LiveSource, SourceCounters};

/// Settings of one AF_PACKET socket.
#[derive(Debug, Clone)]
pub struct AfPacketConfig {
    pub iface: String,
    /// Fanout group id, the same for every socket of one interface (unique per interface);
    /// `None` with a single worker, which then sees fragments as they are on the wire.
    pub fanout_group: Option<u16>,
    /// Ring size in bytes (rounded to whole blocks).
    pub ring_bytes: usize,
    /// How long the kernel holds a partly filled block before handing it over (ms).
    pub block_timeout_ms: u32,
    /// Bytes kept per frame.
    pub snaplen: u32,
    pub promiscuous: bool,
    /// libpcap filter expression; empty = everything.
    pub bpf_filter: String,
    /// Worker index, for the label only.
    pub worker: usize,
}

/// A block holds many frames; the kernel hands a partly filled block over after the configured
/// timeout, so a quiet link still delivers promptly.
const BLOCK_BYTES: usize = 1 << 20;
/// Room for the frame header plus the 4-byte VLAN tag we may put back.
const FRAME_SLACK: usize = 128;

pub struct AfPacketSource {
    fd: OwnedFd,
    ring: *mut u8,
    ring_len: usize,
    blocks: usize,
    next_block: usize,
    /// A frame whose VLAN tag the kernel moved into the header, with the tag put back.
    retagged: Vec<u8>,
    snaplen: usize,
    counters: SourceCounters,
    label: String,
    iface: String,
}

// SAFETY: the ring mapping is owned by this value alone and only touched through `&mut self`;
// moving it to the worker thread that owns it is sound.
unsafe impl Send for AfPacketSource {}

impl AfPacketSource {
    pub fn open(cfg: &AfPacketConfig) -> Result<AfPacketSource, LiveError> {
        let iface = cfg.iface.clone();
        let io_err = |what: &'static str| {
            let source = io::Error::last_os_error();
            LiveError::Io {
                iface: iface.clone(),
                what,
                source,
            }
        };
        let ifindex = interface_index(&cfg.iface)?;
        let protocol = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
        if raw < 0 {
            return Err(io_err(
                "cannot open an AF_PACKET socket (needs CAP_NET_RAW)",
            ));
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        set_opt(
            &fd,
            libc::PACKET_VERSION,
            &(libc::tpacket_versions::TPACKET_V3 as i32),
        )
        .map_err(|_| io_err("TPACKET_V3 not supported"))?;
        if !cfg.bpf_filter.trim().is_empty() {
            attach_filter(&fd, &cfg.iface, &cfg.bpf_filter)?;
        }

        let blocks = (cfg.ring_bytes / BLOCK_BYTES).max(2);
        let frame_size = frame_size(cfg.snaplen);
        let req = libc::tpacket_req3 {
            tp_block_size: BLOCK_BYTES as u32,
            tp_block_nr: blocks as u32,
            tp_frame_size: frame_size as u32,
            tp_frame_nr: ((BLOCK_BYTES / frame_size) * blocks) as u32,
            tp_retire_blk_tov: cfg.block_timeout_ms.max(1),
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        set_opt(&fd, libc::PACKET_RX_RING, &req).map_err(|_| io_err("cannot set up the ring"))?;
        let ring_len = BLOCK_BYTES * blocks;
        // SAFETY: maps the ring the kernel just allocated for this socket; checked for failure.
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED,
                fd.as_raw_fd(),
                0,
            )
        };
        let ring = if ring == libc::MAP_FAILED {
            // MAP_LOCKED counts against RLIMIT_MEMLOCK; without the right, map unlocked.
            // SAFETY: as above, without MAP_LOCKED.
            let unlocked = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    ring_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            };
            if unlocked == libc::MAP_FAILED {
                return Err(io_err("cannot map the ring"));
            }
            unlocked
        } else {
            ring
        };
        // From here on, Drop unmaps.
        let mut source = AfPacketSource {
            fd,
            ring: ring.cast(),
            ring_len,
            blocks,
            next_block: 0,
            retagged: Vec::with_capacity(cfg.snaplen as usize + 4),
            snaplen: cfg.snaplen.max(64) as usize,
            counters: SourceCounters::default(),
            label: format!("{}/af-packet/{}", cfg.iface, cfg.worker),
            iface: cfg.iface.clone(),
        };

        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = protocol;
        addr.sll_ifindex = ifindex;
        // SAFETY: `addr` is a valid sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                source.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc != 0 {
            return Err(io_err("cannot bind to the interface"));
        }
        if cfg.promiscuous {
            let mreq = libc::packet_mreq {
                mr_ifindex: ifindex,
                mr_type: libc::PACKET_MR_PROMISC as u16,
                mr_alen: 0,
                mr_address: [0; 8],
            };
            set_opt(&source.fd, libc::PACKET_ADD_MEMBERSHIP, &mreq)
                .map_err(|_| io_err("cannot enable promiscuous mode"))?;
        }
        if let Some(group) = cfg.fanout_group {
            join_fanout(&source.fd, group).map_err(|source| LiveError::Io {
                iface: cfg.iface.clone(),
                what: "cannot join the fanout group",
                source,
            })?;
        }
        // Counters start now: drop what the kernel counted before the ring was read.
        source.read_kernel_stats();
        source.counters = SourceCounters::default();
        Ok(source)
    }

    fn block(&self, index: usize) -> *mut libc::tpacket_block_desc {
        // SAFETY: index < blocks, so the offset stays inside the mapping.
        unsafe { self.ring.add(index * BLOCK_BYTES).cast() }
    }

    /// Reads and resets the kernel's PACKET_STATISTICS; returns dropped frames.
    fn read_kernel_stats(&mut self) -> u64 {
        let mut stats = libc::tpacket_stats_v3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `stats` is a valid buffer of `len` bytes for the kernel to fill.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut stats as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return 0;
        }
        u64::from(stats.tp_drops)
    }

    fn take_socket_error(&self) -> i32 {
        let mut error: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `error` is a valid c_int buffer of `len` bytes.
        unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut error as *mut libc::c_int).cast(),
                &mut len,
            );
        }
        error
    }

    fn interface_up(&self) -> bool {
        interface_index(&self.iface).is_ok()
    }
}

impl LiveSource for AfPacketSource {
    fn link_type(&self) -> LinkType {
        LinkType::Ethernet
    }

    fn next_batch(
        &mut self,
        timeout: Duration,
        on_frame: &mut dyn FnMut(Frame<'_>),
    ) -> Result<usize, LiveError> {
        let desc = self.block(self.next_block);
        // SAFETY: `desc` points at a block header inside the mapping; the kernel writes
        // block_status, so read it volatile and order the reads after it with an acquire fence.
        let status = unsafe { std::ptr::read_volatile(&(*desc).hdr.bh1.block_status) };
        if status & libc::TP_STATUS_USER == 0 {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            };
            let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    return Ok(0);
                }
                return Err(LiveError::Io {
                    iface: self.iface.clone(),
                    what: "poll",
                    source: err,
                });
            }
            if pfd.revents & libc::POLLERR != 0 {
                // The link went down (ENETDOWN) or similar: reading SO_ERROR clears it, or every
                // later poll would return at once. The ring resumes by itself when the link
                // comes back; only a vanished interface needs a new socket.
                let error = self.take_socket_error();
                if !self.interface_up() {
                    return Err(LiveError::Down {
                        iface: self.iface.clone(),
                    });
                }
                tracing::debug!(iface = %self.iface, error, "capture socket error");
            }
            // SAFETY: as above.
            let status = unsafe { std::ptr::read_volatile(&(*desc).hdr.bh1.block_status) };
            if status & libc::TP_STATUS_USER == 0 {
                return Ok(0);
            }
        }
        fence(Ordering::Acquire);
        // SAFETY: the block belongs to user space until its status is set back to
        // TP_STATUS_KERNEL; the kernel wrote num_pkts and the frame chain before handing it over.
        let (count, first) = unsafe {
            let h = &(*desc).hdr.bh1;
            (h.num_pkts as usize, h.offset_to_first_pkt as usize)
        };
        let block_base = desc as *const u8;
        let mut offset = first;
        let mut handed = 0;
        for _ in 0..count {
            if offset + std::mem::size_of::<libc::tpacket3_hdr>() > BLOCK_BYTES {
                break;
            }
            // SAFETY: the kernel laid out `count` frame headers in this block; `offset` is
            // checked against the block size above and below.
            let hdr = unsafe { &*(block_base.add(offset) as *const libc::tpacket3_hdr) };
            let mac = hdr.tp_mac as usize;
            let caplen = hdr.tp_snaplen as usize;
            if offset + mac + caplen <= BLOCK_BYTES {
                // SAFETY: bounds checked against the block just above.
                let data =
                    unsafe { std::slice::from_raw_parts(block_base.add(offset + mac), caplen) };
                let ts_ns = u64::from(hdr.tp_sec) * 1_000_000_000 + u64::from(hdr.tp_nsec);
                let vlan_valid = hdr.tp_status & libc::TP_STATUS_VLAN_VALID != 0;
                let mut wire_len = hdr.tp_len;
                let data = if vlan_valid && data.len() >= 12 {
                    // The NIC or kernel took the 802.1Q tag out of the frame; put it back so
                    // decoding sees the frame as it was on the wire.
                    let tpid = if hdr.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                        hdr.hv1.tp_vlan_tpid
                    } else {
                        0x8100
                    };
                    self.retagged.clear();
                    self.retagged.extend_from_slice(&data[..12]);
                    self.retagged.extend_from_slice(&tpid.to_be_bytes());
                    self.retagged
                        .extend_from_slice(&(hdr.hv1.tp_vlan_tci as u16).to_be_bytes());
                    self.retagged.extend_from_slice(&data[12..]);
                    wire_len += 4;
                    &self.retagged[..]
                } else {
                    data
                };
                let data = &data[..data.len().min(self.snaplen)];
                self.counters.packets += 1;
                self.counters.bytes += u64::from(wire_len);
                on_frame(Frame {
                    ts_ns,
                    data,
                    wire_len,
                });
                handed += 1;
            }
            if hdr.tp_next_offset == 0 {
                break;
            }
            offset += hdr.tp_next_offset as usize;
        }
        fence(Ordering::Release);
        // SAFETY: gives the block back; the frames borrowed from it were only lent to
        // `on_frame`, which has returned.
        unsafe {
            std::ptr::write_volatile(&mut (*desc).hdr.bh1.block_status, libc::TP_STATUS_KERNEL)
        };
        self.next_block = (self.next_block + 1) % self.blocks;
        Ok(handed)
    }

    fn counters(&mut self) -> SourceCounters {
        self.counters.drops += self.read_kernel_stats();
        self.counters
    }

    fn label(&self) -> &str {
        &self.label
    }
}

impl Drop for AfPacketSource {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping made in `open`; no borrow of it outlives `&mut self`.
        unsafe {
            libc::munmap(self.ring.cast(), self.ring_len);
        }
    }
}

fn frame_size(snaplen: u32) -> usize {
    let want = snaplen as usize + FRAME_SLACK;
    // TPACKET_ALIGNMENT, and a power of two so frames tile a block.
    want.next_power_of_two().clamp(2048, BLOCK_BYTES)
}

/// Index of a network interface, or `NoSuchInterface`.
pub fn interface_index(iface: &str) -> Result<i32, LiveError> {
    let name = CString::new(iface).map_err(|_| LiveError::NoSuchInterface {
        iface: iface.to_string(),
    })?;
    // SAFETY: `name` is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(LiveError::NoSuchInterface {
            iface: iface.to_string(),
        });
    }
    Ok(index as i32)
}

/// Joins `fd` to fanout group `group` (hash mode, IPv4 defragmentation before hashing).
/// Also used on libpcap's socket so the fallback spreads over workers the same way.
pub fn join_fanout(fd: &impl AsRawFd, group: u16) -> io::Result<()> {
    let arg: u32 =
        u32::from(group) | ((libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG) << 16);
    set_opt(fd, libc::PACKET_FANOUT, &arg)
}

fn set_opt<T>(fd: &impl AsRawFd, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a valid T of the size given, as the option `name` expects.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Compiles a libpcap filter expression and attaches it to the socket, so the kernel drops what
/// the operator excluded before it reaches the ring.
fn attach_filter(fd: &OwnedFd, iface: &str, expr: &str) -> Result<(), LiveError> {
    let insns = compile_filter(expr).map_err(|reason| LiveError::Other {
        iface: iface.to_string(),
        reason,
    })?;
    let prog = libc::sock_fprog {
        len: insns.len() as u16,
        filter: insns.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `insns`, which outlives the call; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&prog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(LiveError::Io {
            iface: iface.to_string(),
            what: "cannot attach the BPF filter",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Classic BPF for an Ethernet link, compiled by libpcap; the error names what it refused.
pub fn compile_filter(expr: &str) -> Result<Vec<libc::sock_filter>, String> {
    let dead = pcap::Capture::dead_with_precision(pcap::Linktype::ETHERNET, pcap::Precision::Nano)
        .map_err(|e| format!("libpcap: {e}"))?;
    let program = dead
        .compile(expr, true)
        .map_err(|e| format!("bad BPF filter {expr:?}: {e}"))?;
    // libpcap's instructions only print as "code jt jf k"; that is the kernel's sock_filter.
    program
        .get_instructions()
        .iter()
        .map(|insn| {
            let text = insn.to_string();
            let mut parts = text.split_whitespace().map(str::parse::<u64>);
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(Ok(code)), Some(Ok(jt)), Some(Ok(jf)), Some(Ok(k))) => {
                    Ok(libc::sock_filter {
                        code: code as u16,
                        jt: jt as u8,
                        jf: jf as u8,
                        k: k as u32,
                    })
                }
                _ => Err(format!("unexpected BPF instruction {text:?} from libpcap")),
            }
        })
        .collect()
}
