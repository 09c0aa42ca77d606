//! libpcap capture, the portable fallback (`pcap` crate).
//!
//! libpcap has no notion of fanout, but on Linux its handle is an AF_PACKET socket: with more
//! than one worker each worker opens its own handle and joins it to the interface's fanout
//! group, so flows spread exactly as with the AF_PACKET source.

use std::os::fd::AsRawFd;
use std::time::Duration;

use vigil_parsers::LinkType;

use super::af_packet::{interface_index, join_fanout};
use super::{Frame, LiveError, LiveSource, SourceCounters};

#[derive(Debug, Clone)]
pub struct LibpcapConfig {
    pub iface: String,
    /// Fanout group when several workers capture the interface; `None` for a single handle.
    pub fanout_group: Option<u16>,
    pub snaplen: u32,
    pub promiscuous: bool,
    pub bpf_filter: String,
    /// Kernel buffer size in bytes.
    pub buffer_bytes: usize,
    pub worker: usize,
}

pub struct LibpcapSource {
    capture: pcap::Capture<pcap::Active>,
    link: LinkType,
    counters: SourceCounters,
    label: String,
    iface: String,
    /// Most frames taken per `next_batch`, so a busy link still returns to the worker loop.
    batch: usize,
}

impl LibpcapSource {
    pub fn open(cfg: &LibpcapConfig) -> Result<LibpcapSource, LiveError> {
        interface_index(&cfg.iface)?;
        let other = |reason: String| LiveError::Other {
            iface: cfg.iface.clone(),
            reason,
        };
        let inactive = pcap::Capture::from_device(cfg.iface.as_str())
            .map_err(|e| other(format!("libpcap: {e}")))?
            .snaplen(cfg.snaplen.min(i32::MAX as u32) as i32)
            .promisc(cfg.promiscuous)
            .immediate_mode(false)
            .timeout(10)
            .buffer_size(cfg.buffer_bytes.min(i32::MAX as usize) as i32)
            .precision(pcap::Precision::Nano);
        let mut capture = inactive
            .open()
            .map_err(|e| {
                other(format!(
                    "libpcap cannot open the interface (needs CAP_NET_RAW): {e}"
                ))
            })?
            .setnonblock()
            .map_err(|e| other(format!("libpcap: {e}")))?;
        if !cfg.bpf_filter.trim().is_empty() {
            capture
                .filter(&cfg.bpf_filter, true)
                .map_err(|e| other(format!("bad BPF filter {:?}: {e}", cfg.bpf_filter)))?;
        }
        if let Some(group) = cfg.fanout_group {
            join_fanout(&capture, group).map_err(|source| LiveError::Io {
                iface: cfg.iface.clone(),
                what: "cannot join libpcap's socket to the fanout group",
                source,
            })?;
        }
        let link = LinkType::from_pcap(capture.get_datalink().0 as u32);
        Ok(LibpcapSource {
            capture,
            link,
            counters: SourceCounters::default(),
            label: format!("{}/pcap/{}", cfg.iface, cfg.worker),
            iface: cfg.iface.clone(),
            batch: 1024,
        })
    }
}

impl LiveSource for LibpcapSource {
    fn link_type(&self) -> LinkType {
        self.link
    }

    fn next_batch(
        &mut self,
        timeout: Duration,
        on_frame: &mut dyn FnMut(Frame<'_>),
    ) -> Result<usize, LiveError> {
        let counters = &mut self.counters;
        let mut take = |packet: pcap::Packet<'_>| {
            let h = packet.header;
            // With nanosecond precision libpcap puts nanoseconds in tv_usec.
            let ts_ns = (h.ts.tv_sec as u64) * 1_000_000_000 + h.ts.tv_usec as u64;
            counters.packets += 1;
            counters.bytes += u64::from(h.len);
            on_frame(Frame {
                ts_ns,
                data: packet.data,
                wire_len: h.len,
            });
        };
        let got = self
            .capture
            .dispatch(Some(self.batch), &mut take)
            .map_err(|e| pcap_error(&self.iface, e))?;
        if got > 0 {
            return Ok(got);
        }
        let mut pfd = libc::pollfd {
            fd: self.capture.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd on libpcap's descriptor, which outlives the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc <= 0 {
            return Ok(0);
        }
        self.capture
            .dispatch(Some(self.batch), &mut take)
            .map_err(|e| pcap_error(&self.iface, e))
    }

    fn counters(&mut self) -> SourceCounters {
        if let Ok(stat) = self.capture.stats() {
            // libpcap's counts are cumulative since open.
            self.counters.drops = u64::from(stat.dropped) + u64::from(stat.if_dropped);
        }
        self.counters
    }

    fn label(&self) -> &str {
        &self.label
    }
}

fn pcap_error(iface: &str, e: pcap::Error) -> LiveError {
    if interface_index(iface).is_err() {
        return LiveError::Down {
            iface: iface.to_string(),
        };
    }
    LiveError::Other {
        iface: iface.to_string(),
        reason: format!("libpcap: {e}"),
    }
}
