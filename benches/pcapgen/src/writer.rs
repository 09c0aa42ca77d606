//! Capture-file writers (classic pcap, pcapng) and link-type conversion of
//! Ethernet frames, so readers can be exercised on every format variant.

use std::io::{self, Write};

/// Byte order of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Endian {
    #[default]
    Little,
    Big,
}

impl Endian {
    fn u16(self, v: u16) -> [u8; 2] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }

    fn u32(self, v: u32) -> [u8; 4] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }
}

/// Classic pcap timestamp resolution (selects the magic number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TsPrecision {
    /// Magic 0xa1b2c3d4.
    #[default]
    Micro,
    /// Magic 0xa1b23c4d.
    Nano,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapOptions {
    pub endian: Endian,
    pub precision: TsPrecision,
    /// Frames longer than this are truncated (caplen < orig_len).
    pub snaplen: u32,
    /// LINKTYPE_* value; 1 = Ethernet.
    pub linktype: u32,
}

impl Default for PcapOptions {
    fn default() -> Self {
        PcapOptions {
            endian: Endian::Little,
            precision: TsPrecision::Micro,
            snaplen: 65_535,
            linktype: 1,
        }
    }
}

/// Classic pcap writer. The global header is written by [`PcapWriter::new`].
pub struct PcapWriter<W: Write> {
    out: W,
    opts: PcapOptions,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(mut out: W, opts: PcapOptions) -> io::Result<Self> {
        let e = opts.endian;
        let magic = match opts.precision {
            TsPrecision::Micro => 0xa1b2_c3d4u32,
            TsPrecision::Nano => 0xa1b2_3c4d,
        };
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&e.u32(magic));
        h[4..6].copy_from_slice(&e.u16(2));
        h[6..8].copy_from_slice(&e.u16(4));
        // thiszone and sigfigs stay 0.
        h[16..20].copy_from_slice(&e.u32(opts.snaplen));
        h[20..24].copy_from_slice(&e.u32(opts.linktype));
        out.write_all(&h)?;
        Ok(PcapWriter { out, opts })
    }

    /// Writes one record; `data` is the whole packet (orig_len = its length).
    pub fn write_packet(&mut self, ts_ns: u64, data: &[u8]) -> io::Result<()> {
        self.write_packet_with_len(ts_ns, data, data.len() as u32)
    }

    /// Writes one record whose original wire length was `orig_len`.
    pub fn write_packet_with_len(
        &mut self,
        ts_ns: u64,
        data: &[u8],
        orig_len: u32,
    ) -> io::Result<()> {
        let e = self.opts.endian;
        let cap = data.len().min(self.opts.snaplen as usize);
        let frac = match self.opts.precision {
            TsPrecision::Micro => (ts_ns % 1_000_000_000) / 1_000,
            TsPrecision::Nano => ts_ns % 1_000_000_000,
        };
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&e.u32((ts_ns / 1_000_000_000) as u32));
        h[4..8].copy_from_slice(&e.u32(frac as u32));
        h[8..12].copy_from_slice(&e.u32(cap as u32));
        h[12..16].copy_from_slice(&e.u32(orig_len));
        self.out.write_all(&h)?;
        self.out.write_all(&data[..cap])
    }

    pub fn into_inner(self) -> io::Result<W> {
        Ok(self.out)
    }
}

/// Writes `frames` as one classic pcap; returns the sink.
pub fn write_pcap<W: Write>(
    frames: &[(u64, Vec<u8>)],
    opts: &PcapOptions,
    out: W,
) -> io::Result<W> {
    let mut w = PcapWriter::new(out, opts.clone())?;
    for (ts, f) in frames {
        w.write_packet(*ts, f)?;
    }
    w.into_inner()
}

/// A pcapng Interface Description Block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapngInterface {
    pub linktype: u16,
    /// 0 = no limit.
    pub snaplen: u32,
    /// `if_tsresol` value: decimal exponent, 6 = microseconds, 9 = ns.
    /// (Only the decimal form, high bit clear, is produced.)
    pub tsresol: u8,
    pub name: Option<String>,
}

impl Default for PcapngInterface {
    fn default() -> Self {
        PcapngInterface {
            linktype: 1,
            snaplen: 0,
            tsresol: 6,
            name: None,
        }
    }
}

/// Packet block kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PcapngBlock {
    /// Enhanced Packet Block (interface id, timestamp).
    #[default]
    Epb,
    /// Simple Packet Block (no timestamp, always interface 0).
    Spb,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapngOptions {
    pub endian: Endian,
    /// Frames are spread round-robin over these (EPB); at least one.
    pub interfaces: Vec<PcapngInterface>,
    pub block: PcapngBlock,
}

impl Default for PcapngOptions {
    fn default() -> Self {
        PcapngOptions {
            endian: Endian::Little,
            interfaces: vec![PcapngInterface::default()],
            block: PcapngBlock::Epb,
        }
    }
}

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// pcapng writer: SHB on creation, then IDBs and packet blocks.
pub struct PcapngWriter<W: Write> {
    out: W,
    endian: Endian,
    ifaces: Vec<PcapngInterface>,
    buf: Vec<u8>,
}

impl<W: Write> PcapngWriter<W> {
    pub fn new(out: W, endian: Endian) -> io::Result<Self> {
        let mut w = PcapngWriter {
            out,
            endian,
            ifaces: Vec::new(),
            buf: Vec::with_capacity(2048),
        };
        let e = endian;
        let mut body = Vec::new();
        body.extend_from_slice(&e.u32(0x1A2B_3C4D));
        body.extend_from_slice(&e.u16(1));
        body.extend_from_slice(&e.u16(0));
        body.extend_from_slice(&u64::MAX.to_le_bytes()); // section length unknown (-1)
        w.option(&mut body, 4, b"vigil-pcapgen"); // shb_userappl
        w.option(&mut body, 0, &[]);
        w.block(0x0A0D_0D0A, &body)?;
        Ok(w)
    }

    fn option(&self, body: &mut Vec<u8>, code: u16, val: &[u8]) {
        body.extend_from_slice(&self.endian.u16(code));
        body.extend_from_slice(&self.endian.u16(val.len() as u16));
        body.extend_from_slice(val);
        body.resize(pad4(body.len()), 0);
    }

    fn block(&mut self, typ: u32, body: &[u8]) -> io::Result<()> {
        let e = self.endian;
        let total = (12 + pad4(body.len())) as u32;
        self.buf.clear();
        self.buf.extend_from_slice(&e.u32(typ));
        self.buf.extend_from_slice(&e.u32(total));
        self.buf.extend_from_slice(body);
        self.buf.resize(8 + pad4(body.len()), 0);
        self.buf.extend_from_slice(&e.u32(total));
        self.out.write_all(&self.buf)
    }

    /// Writes an IDB; returns the new interface id.
    pub fn add_interface(&mut self, iface: PcapngInterface) -> io::Result<u32> {
        let e = self.endian;
        let mut body = Vec::new();
        body.extend_from_slice(&e.u16(iface.linktype));
        body.extend_from_slice(&e.u16(0));
        body.extend_from_slice(&e.u32(iface.snaplen));
        if let Some(name) = &iface.name {
            self.option(&mut body, 2, name.as_bytes());
        }
        self.option(&mut body, 9, &[iface.tsresol]);
        self.option(&mut body, 0, &[]);
        self.block(1, &body)?;
        self.ifaces.push(iface);
        Ok(self.ifaces.len() as u32 - 1)
    }

    fn caplen(&self, iface: usize, len: usize) -> usize {
        match self.ifaces[iface].snaplen {
            0 => len,
            s => len.min(s as usize),
        }
    }

    /// Enhanced Packet Block on interface `iface`.
    pub fn write_epb(
        &mut self,
        iface: u32,
        ts_ns: u64,
        data: &[u8],
        orig_len: u32,
    ) -> io::Result<()> {
        let e = self.endian;
        let i = iface as usize;
        let res = self.ifaces[i].tsresol as u32;
        let ts = if res <= 9 {
            ts_ns / 10u64.pow(9 - res)
        } else {
            ts_ns.saturating_mul(10u64.pow(res - 9))
        };
        let cap = self.caplen(i, data.len());
        let mut body = Vec::with_capacity(20 + pad4(cap));
        body.extend_from_slice(&e.u32(iface));
        body.extend_from_slice(&e.u32((ts >> 32) as u32));
        body.extend_from_slice(&e.u32(ts as u32));
        body.extend_from_slice(&e.u32(cap as u32));
        body.extend_from_slice(&e.u32(orig_len));
        body.extend_from_slice(&data[..cap]);
        self.block(6, &body)
    }

    /// Simple Packet Block (belongs to interface 0).
    pub fn write_spb(&mut self, data: &[u8], orig_len: u32) -> io::Result<()> {
        let cap = self.caplen(0, data.len());
        let mut body = Vec::with_capacity(4 + pad4(cap));
        body.extend_from_slice(&self.endian.u32(orig_len));
        body.extend_from_slice(&data[..cap]);
        self.block(3, &body)
    }

    pub fn into_inner(self) -> io::Result<W> {
        Ok(self.out)
    }
}

/// Writes `frames` as pcapng: SHB, one IDB per configured interface, then
/// EPBs spread round-robin over the interfaces (or SPBs).
pub fn write_pcapng<W: Write>(
    frames: &[(u64, Vec<u8>)],
    opts: &PcapngOptions,
    out: W,
) -> io::Result<W> {
    let mut w = PcapngWriter::new(out, opts.endian)?;
    let mut ifaces = opts.interfaces.clone();
    if ifaces.is_empty() {
        ifaces.push(PcapngInterface::default());
    }
    let n = ifaces.len() as u32;
    for i in ifaces {
        w.add_interface(i)?;
    }
    for (k, (ts, f)) in frames.iter().enumerate() {
        match opts.block {
            PcapngBlock::Epb => w.write_epb(k as u32 % n, *ts, f, f.len() as u32)?,
            PcapngBlock::Spb => w.write_spb(f, f.len() as u32)?,
        }
    }
    w.into_inner()
}

/// pcapng with two Ethernet interfaces, "eth0" at 10^-6 and "eth1" at
/// 10^-9 resolution; frames alternate between them.
pub fn write_pcapng_two_interfaces<W: Write>(frames: &[(u64, Vec<u8>)], out: W) -> io::Result<W> {
    let opts = PcapngOptions {
        endian: Endian::Little,
        interfaces: vec![
            PcapngInterface {
                name: Some("eth0".into()),
                tsresol: 6,
                ..Default::default()
            },
            PcapngInterface {
                name: Some("eth1".into()),
                tsresol: 9,
                ..Default::default()
            },
        ],
        block: PcapngBlock::Epb,
    };
    write_pcapng(frames, &opts, out)
}

/// Target link types for [`convert_linktype`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// 1: unchanged.
    Ethernet,
    /// 101: bare IPv4/IPv6.
    RawIp,
    /// 228: bare IPv4 only.
    Ipv4,
    /// 229: bare IPv6 only.
    Ipv6,
    /// 113: Linux cooked capture v1.
    LinuxSll,
    /// 276: Linux cooked capture v2.
    LinuxSll2,
    /// 0: BSD loopback, 4-byte address family in the capturing host's byte
    /// order (`big_endian`); AF_INET = 2, AF_INET6 = 24 (Net/OpenBSD),
    /// 28 (FreeBSD) or 30 (macOS).
    Null { af_inet6: u32, big_endian: bool },
    /// 108: OpenBSD loopback, address family in network byte order.
    Loop { af_inet6: u32 },
}

impl LinkType {
    /// The LINKTYPE_* number for the file header / IDB.
    pub fn dlt(&self) -> u32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::RawIp => 101,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
            LinkType::Null { .. } => 0,
            LinkType::Loop { .. } => 108,
        }
    }
}

/// Re-encodes one Ethernet frame for `to`. Returns `None` when the frame's
/// ethertype cannot be expressed there (e.g. a VLAN or MPLS frame for the
/// IP-only link types).
pub fn convert_linktype(frame: &[u8], to: LinkType) -> Option<Vec<u8>> {
    if frame.len() < 14 {
        return None;
    }
    let etype = u16::from_be_bytes([frame[12], frame[13]]);
    let payload = &frame[14..];
    let is4 = etype == 0x0800;
    let is6 = etype == 0x86DD;
    let with_prefix = |prefix: &[u8]| {
        let mut v = Vec::with_capacity(prefix.len() + payload.len());
        v.extend_from_slice(prefix);
        v.extend_from_slice(payload);
        v
    };
    let pkttype: u16 = if frame[0] & 1 == 0 {
        0 // to us
    } else if frame[..6] == [0xff; 6] {
        1 // broadcast
    } else {
        2 // multicast
    };
    match to {
        LinkType::Ethernet => Some(frame.to_vec()),
        LinkType::RawIp if is4 || is6 => Some(payload.to_vec()),
        LinkType::Ipv4 if is4 => Some(payload.to_vec()),
        LinkType::Ipv6 if is6 => Some(payload.to_vec()),
        LinkType::Null {
            af_inet6,
            big_endian,
        } if is4 || is6 => {
            let af = if is4 { 2 } else { af_inet6 };
            let b = if big_endian {
                af.to_be_bytes()
            } else {
                af.to_le_bytes()
            };
            Some(with_prefix(&b))
        }
        LinkType::Loop { af_inet6 } if is4 || is6 => {
            let af: u32 = if is4 { 2 } else { af_inet6 };
            Some(with_prefix(&af.to_be_bytes()))
        }
        LinkType::LinuxSll => {
            let mut h = [0u8; 16];
            h[0..2].copy_from_slice(&pkttype.to_be_bytes());
            h[2..4].copy_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
            h[4..6].copy_from_slice(&6u16.to_be_bytes());
            h[6..12].copy_from_slice(&frame[6..12]);
            h[14..16].copy_from_slice(&etype.to_be_bytes());
            Some(with_prefix(&h))
        }
        LinkType::LinuxSll2 => {
            let mut h = [0u8; 20];
            h[0..2].copy_from_slice(&etype.to_be_bytes());
            h[4..8].copy_from_slice(&2u32.to_be_bytes()); // ifindex
            h[8..10].copy_from_slice(&1u16.to_be_bytes());
            h[10] = pkttype as u8;
            h[11] = 6;
            h[12..18].copy_from_slice(&frame[6..12]);
            Some(with_prefix(&h))
        }
        _ => None,
    }
}

/// Converts every frame; frames that cannot be expressed are skipped.
pub fn convert_frames(frames: &[(u64, Vec<u8>)], to: LinkType) -> Vec<(u64, Vec<u8>)> {
    frames
        .iter()
        .filter_map(|(ts, f)| convert_linktype(f, to).map(|c| (*ts, c)))
        .collect()
}
