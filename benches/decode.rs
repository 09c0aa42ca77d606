//! Per-packet decode cost on realistic frames.
//!
//! Frames come from the project's deterministic generator (`vigil-pcapgen`, seed 1, ~4 MiB of
//! mixed traffic: HTTP, TLS, DNS, other UDP, ICMP, some IPv6, VLAN/QinQ/MPLS, GRE, ERSPAN, VXLAN,
//! Geneve, IP-in-IP, Teredo, fragments). Every bench reuses one `DecodedPacket`, as the capture
//! path does.
//!
//! - `decode/all_frames`: decodes the whole frame list per iteration; throughput is in elements
//!   (packets), so criterion prints packets/s (ns/packet = 1e9 / that).
//! - `decode_one/{ipv4_tcp,ipv6_udp,tunnel_*}`: one representative frame picked from the list.
//!
//! Run: `cargo bench --bench decode` (add `-- --quick` or a filter such as `-- decode_one`).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use vigil_parsers::{decode, DecodedPacket, LinkType, PacketKind, TunnelKind, L4};
use vigil_pcapgen::{generate_frames, GenConfig};

const SEED: u64 = 1;
const TARGET_BYTES: u64 = 4 << 20;

fn frames() -> Vec<Vec<u8>> {
    let (frames, summary) = generate_frames(&GenConfig::new(SEED, TARGET_BYTES));
    assert_eq!(frames.len() as u64, summary.packets);
    frames.into_iter().map(|(_, f)| f).collect()
}

/// The first frame whose decoded form satisfies `pred`.
fn pick(frames: &[Vec<u8>], pred: impl Fn(&DecodedPacket) -> bool) -> Option<&[u8]> {
    let mut pkt = DecodedPacket::default();
    frames.iter().map(Vec::as_slice).find(|f| {
        decode(LinkType::Ethernet, f, &mut pkt);
        pkt.kind == PacketKind::Ip && pkt.anomaly_count == 0 && pred(&pkt)
    })
}

fn plain(p: &DecodedPacket) -> bool {
    p.tunnel.kind == TunnelKind::None
        && p.vlan_count == 0
        && p.mpls_labels == 0
        && p.l3.fragment.is_none()
        && p.payload_len > 0
}

fn bench_decode(c: &mut Criterion) {
    let frames = frames();
    let total_bytes: usize = frames.iter().map(Vec::len).sum();
    eprintln!(
        "decode bench: {} frames, {} bytes of frames (seed {SEED}, target {TARGET_BYTES} bytes)",
        frames.len(),
        total_bytes
    );

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function("all_frames", |b| {
        let mut pkt = DecodedPacket::default();
        b.iter(|| {
            for f in &frames {
                decode(LinkType::Ethernet, black_box(f), &mut pkt);
                black_box(&pkt);
            }
        })
    });
    group.finish();

    let ipv4_tcp = pick(&frames, |p| {
        plain(p) && p.l3.version == 4 && matches!(p.l4, L4::Tcp(_))
    })
    .expect("generated frames contain a plain IPv4/TCP data segment");
    let ipv6_udp = pick(&frames, |p| {
        plain(p) && p.l3.version == 6 && matches!(p.l4, L4::Udp { .. })
    })
    .expect("generated frames contain a plain IPv6/UDP datagram");
    let tunnelled = [TunnelKind::Vxlan, TunnelKind::Gre]
        .into_iter()
        .find_map(|kind| {
            pick(&frames, |p| {
                p.tunnel.kind == kind && p.l3.fragment.is_none() && !matches!(p.l4, L4::None)
            })
            .map(|f| (kind, f))
        })
        .expect("generated frames contain a VXLAN or GRE frame");

    let mut group = c.benchmark_group("decode_one");
    group.throughput(Throughput::Elements(1));
    let tunnel_name = format!("tunnel_{}", tunnelled.0.as_str().to_ascii_lowercase());
    for (name, frame) in [
        ("ipv4_tcp", ipv4_tcp),
        ("ipv6_udp", ipv6_udp),
        (tunnel_name.as_str(), tunnelled.1),
    ] {
        eprintln!("decode_one/{name}: {}-byte frame", frame.len());
        group.bench_function(name, |b| {
            let mut pkt = DecodedPacket::default();
            b.iter(|| {
                decode(LinkType::Ethernet, black_box(frame), &mut pkt);
                black_box(&pkt);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
