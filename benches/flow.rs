//! Flow table cost per packet.
//!
//! The generator's frames (seed 1, ~4 MiB of mixed traffic, as in the decode bench) are decoded
//! once up front; fragments and non-IP frames are dropped, as the worker only sees flow-bound
//! packets there. Each bench does what the worker does per packet: `FlowKey::from_packet` then
//! `FlowTable::update`. Throughput is in elements (packets): ns/packet = 1e9 / (elem/s).
//!
//! - `flow/insert_update`: a fresh table per iteration (built outside the timing with
//!   `iter_batched`) fed every packet in capture order, with the worker's once-per-second expiry
//!   tick; so it pays one insert per flow plus updates, flow ends and the timer wheel.
//! - `flow/lookup_existing`: a warmed table holding every flow, fed the packets again (pure SYNs
//!   left out so that no closed TCP flow is ended and re-created by port reuse): steady-state
//!   lookup + counter/TCP-state update of existing flows.
//! - `flow/key_only`: `FlowKey::from_packet` alone, to split the two above.
//!
//! Run: `cargo bench --bench flow`.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use vigil::flow::{FlowKey, FlowRecord, FlowTable, FlowTableConfig, FlowTimeouts};
use vigil_parsers::{decode, DecodedPacket, LinkType, L4, TCP_ACK, TCP_SYN};
use vigil_pcapgen::{generate_frames, GenConfig};

const SEED: u64 = 1;
const TARGET_BYTES: u64 = 4 << 20;
/// Room for ~48k flows: far more than the frames hold, so no emergency mode or eviction. (The
/// sensor's default is 128 MiB; allocations that large are always fresh mmaps whose page faults
/// would be charged to every fresh-table iteration.)
const MEMCAP_BYTES: usize = 16 << 20;

#[derive(Clone, Copy)]
struct Pkt {
    ts_ns: u64,
    decoded: DecodedPacket,
    wire_bytes: u64,
}

fn packets() -> Vec<Pkt> {
    let (frames, _) = generate_frames(&GenConfig::new(SEED, TARGET_BYTES));
    let mut out = Vec::with_capacity(frames.len());
    let mut decoded = DecodedPacket::default();
    for (ts_ns, frame) in &frames {
        decode(LinkType::Ethernet, frame, &mut decoded);
        if FlowKey::from_packet(&decoded).is_some() {
            out.push(Pkt {
                ts_ns: *ts_ns,
                decoded,
                wire_bytes: frame.len() as u64,
            });
        }
    }
    eprintln!(
        "flow bench: {} frames generated, {} flow-bound packets kept",
        frames.len(),
        out.len()
    );
    out
}

fn config() -> FlowTableConfig {
    FlowTableConfig {
        memcap_bytes: MEMCAP_BYTES,
        timeouts: FlowTimeouts::default(),
        emergency_recovery: 0.7,
    }
}

/// Feeds `pkts` through `table` as a worker does; `ticks` adds the once-per-second expiry.
fn feed(table: &mut FlowTable, pkts: &[Pkt], ended: &mut Vec<FlowRecord>, ticks: bool) {
    let mut second = 0;
    for p in pkts {
        if ticks && p.ts_ns / 1_000_000_000 != second {
            second = p.ts_ns / 1_000_000_000;
            table.expire(p.ts_ns, ended);
        }
        if let Some((key, side)) = FlowKey::from_packet(black_box(&p.decoded)) {
            let rec = table.update(p.ts_ns, &key, side, &p.decoded, p.wire_bytes, ended);
            black_box(rec);
        }
    }
}

fn bench_flow(c: &mut Criterion) {
    let pkts = packets();

    let mut group = c.benchmark_group("flow");
    group.throughput(Throughput::Elements(pkts.len() as u64));

    group.bench_function("insert_update", |b| {
        b.iter_batched(
            || (FlowTable::new(config()), Vec::with_capacity(1024)),
            |(mut table, mut ended)| {
                feed(&mut table, &pkts, &mut ended, true);
                // Returned so the table is dropped outside the timing.
                (table, ended)
            },
            BatchSize::PerIteration,
        )
    });

    // Steady state: every flow already in the table.
    let lookups: Vec<Pkt> = pkts
        .iter()
        .filter(|p| !matches!(p.decoded.l4, L4::Tcp(t) if t.flags & (TCP_SYN | TCP_ACK) == TCP_SYN))
        .copied()
        .collect();
    let mut table = FlowTable::new(config());
    let mut ended = Vec::with_capacity(1024);
    feed(&mut table, &pkts, &mut ended, false);
    let flows = table.len();
    ended.clear();
    feed(&mut table, &lookups, &mut ended, false);
    assert!(
        ended.is_empty() && table.len() == flows,
        "lookup pass must only hit existing flows"
    );
    eprintln!(
        "flow bench: {flows} flows; lookup set {} packets",
        lookups.len()
    );
    group.throughput(Throughput::Elements(lookups.len() as u64));
    group.bench_function("lookup_existing", |b| {
        b.iter(|| feed(&mut table, &lookups, &mut ended, false))
    });

    group.throughput(Throughput::Elements(pkts.len() as u64));
    group.bench_function("key_only", |b| {
        b.iter(|| {
            for p in &pkts {
                black_box(FlowKey::from_packet(black_box(&p.decoded)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_flow);
criterion_main!(benches);
