//! Which capture sources each worker opens, from the `[capture]` settings.

use crate::capture::af_packet::{AfPacketConfig, AfPacketSource};
use crate::capture::af_xdp::{self, AfXdpConfig, AfXdpSource, XdpCopy, XdpMode};
use crate::capture::libpcap::{LibpcapConfig, LibpcapSource};
use crate::capture::{LiveError, LiveSource};
use crate::config::{CaptureMethod, CaptureSection, XdpCopySetting, XdpModeSetting};

/// Everything needed to open (and reopen) one source of one worker.
#[derive(Debug, Clone)]
pub enum SourcePlan {
    AfPacket(AfPacketConfig),
    AfXdp(AfXdpConfig),
    Pcap(LibpcapConfig),
}

impl SourcePlan {
    pub fn open(&self) -> Result<Box<dyn LiveSource>, LiveError> {
        Ok(match self {
            SourcePlan::AfPacket(c) => Box::new(AfPacketSource::open(c)?),
            SourcePlan::AfXdp(c) => {
                let source = AfXdpSource::open(c)?;
                tracing::info!(
                    source = source.label(),
                    zero_copy = source.zero_copy(),
                    mode = ?source.xdp_mode(),
                    "AF_XDP socket bound"
                );
                Box::new(source)
            }
            SourcePlan::Pcap(c) => Box::new(LibpcapSource::open(c)?),
        })
    }

    pub fn iface(&self) -> &str {
        match self {
            SourcePlan::AfPacket(c) => &c.iface,
            SourcePlan::AfXdp(c) => &c.iface,
            SourcePlan::Pcap(c) => &c.iface,
        }
    }

    pub fn method_name(&self) -> &'static str {
        match self {
            SourcePlan::AfPacket(_) => "af-packet",
            SourcePlan::AfXdp(_) => "af-xdp",
            SourcePlan::Pcap(_) => "pcap",
        }
    }
}

/// The sources of each worker. AF_PACKET and libpcap: one per interface, every worker on
/// every interface, the interface's fanout group spreading flows over them. AF_XDP: worker k
/// owns RX queue k of each interface (the NIC's RSS spreads flows), so there are as many
/// workers as the busiest interface has queues.
pub fn plan(capture: &CaptureSection, workers: usize) -> Result<Vec<Vec<SourcePlan>>, String> {
    if capture.interfaces.is_empty() {
        return Err("no capture interface: give -i IFACE or set [capture] interfaces".into());
    }
    if capture.method == CaptureMethod::AfXdp {
        return plan_af_xdp(capture, workers);
    }
    // Fanout group ids are per network namespace; derive them from the process id so two
    // sensors on one host (or a test beside a running sensor) do not join each other's groups.
    let base = (std::process::id() as u16).wrapping_mul(16);
    let mut plans = vec![Vec::new(); workers];
    for (i, iface) in capture.interfaces.iter().enumerate() {
        let group = base.wrapping_add(i as u16);
        for (worker, sources) in plans.iter_mut().enumerate() {
            let plan = match capture.method {
                CaptureMethod::AfPacket => SourcePlan::AfPacket(AfPacketConfig {
                    iface: iface.clone(),
                    fanout_group: (workers > 1).then_some(group),
                    ring_bytes: capture.ring_bytes,
                    block_timeout_ms: capture.block_timeout_ms,
                    snaplen: capture.snaplen,
                    promiscuous: capture.promiscuous,
                    bpf_filter: capture.bpf_filter.clone(),
                    worker,
                }),
                CaptureMethod::Pcap => SourcePlan::Pcap(LibpcapConfig {
                    iface: iface.clone(),
                    fanout_group: (workers > 1).then_some(group),
                    snaplen: capture.snaplen,
                    promiscuous: capture.promiscuous,
                    bpf_filter: capture.bpf_filter.clone(),
                    buffer_bytes: capture.ring_bytes,
                    worker,
                }),
                CaptureMethod::AfXdp => unreachable!("planned by plan_af_xdp"),
            };
            sources.push(plan);
        }
    }
    Ok(plans)
}

fn plan_af_xdp(capture: &CaptureSection, workers: usize) -> Result<Vec<Vec<SourcePlan>>, String> {
    if !capture.bpf_filter.trim().is_empty() {
        // The XDP program redirects every frame of the queue; a classic BPF filter has no
        // place to run in the kernel there.
        return Err(
            "bpf_filter is not supported with af-xdp capture; use af-packet or pcap, or filter upstream"
                .into(),
        );
    }
    let mut queues = Vec::with_capacity(capture.interfaces.len());
    for iface in &capture.interfaces {
        queues.push(af_xdp::queue_count(iface).map_err(|e| e.to_string())?);
    }
    let needed = queues.iter().copied().max().unwrap_or(1).max(1) as usize;
    if workers != needed {
        tracing::info!(
            workers = needed,
            asked = workers,
            "af-xdp: one worker per RX queue (change the queues with ethtool -L)"
        );
    }
    let mode = match capture.xdp_mode {
        XdpModeSetting::Auto => XdpMode::Auto,
        XdpModeSetting::Native => XdpMode::Native,
        XdpModeSetting::Skb => XdpMode::Skb,
    };
    let copy = match capture.xdp_copy {
        XdpCopySetting::Auto => XdpCopy::Auto,
        XdpCopySetting::Copy => XdpCopy::Copy,
        XdpCopySetting::ZeroCopy => XdpCopy::ZeroCopy,
    };
    let mut plans = vec![Vec::new(); needed];
    for (iface, &count) in capture.interfaces.iter().zip(&queues) {
        for (queue, sources) in plans.iter_mut().enumerate().take(count as usize) {
            sources.push(SourcePlan::AfXdp(AfXdpConfig {
                iface: iface.clone(),
                queue: queue as u32,
                frames: capture.xdp_frames,
                mode,
                copy,
                ..AfXdpConfig::default()
            }));
        }
    }
    Ok(plans)
}
