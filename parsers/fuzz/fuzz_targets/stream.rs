//! TCP reassembly: fuzzer-chosen segments (direction, flags, sequence, ack, payload) against
//! every overlap policy, with small depth and memcap so the limits are exercised too. Checks
//! that buffered memory is accounted exactly and returned at the end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_parsers::app::Direction;
use vigil_parsers::stream::{OverlapPolicy, StreamConfig, StreamMemory, StreamSink, TcpReassembler};
use vigil_parsers::TcpInfo;

struct Sink(u64);

impl StreamSink for Sink {
    fn data(&mut self, _dir: Direction, data: &[u8]) {
        self.0 += data.len() as u64;
    }
    fn gap(&mut self, _dir: Direction, _len: u64) {}
    fn end(&mut self, _dir: Direction) {}
    fn event(&mut self, _dir: Direction, _event: &'static str) {}
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, mut rest)) = data.split_first() else {
        return;
    };
    let policy = [
        OverlapPolicy::First,
        OverlapPolicy::Last,
        OverlapPolicy::Bsd,
        OverlapPolicy::Linux,
        OverlapPolicy::Windows,
    ][usize::from(head % 5)];
    let config = StreamConfig {
        depth: if head & 0x80 != 0 { 0 } else { 4096 },
        policy,
        midstream: head & 0x40 != 0,
        max_buffered_per_direction: 2048,
        max_retained_per_direction: 1024,
    };
    let mut mem = StreamMemory::new(3000);
    let mut r = TcpReassembler::new();
    let mut sink = Sink(0);
    // Each segment: dir+flags (1), seq delta (2), ack delta (2), length (1), payload.
    let (mut seq, mut ack) = (0xffff_ff00u32, 0x1000u32);
    while rest.len() >= 6 {
        let (hdr, tail) = rest.split_at(6);
        let len = usize::from(hdr[5]).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        let dir = if hdr[0] & 1 == 0 {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        seq = seq.wrapping_add(u32::from(u16::from_be_bytes([hdr[1], hdr[2]])).wrapping_sub(0x8000));
        ack = ack.wrapping_add(u32::from(u16::from_be_bytes([hdr[3], hdr[4]])));
        let tcp = TcpInfo {
            seq,
            ack,
            flags: hdr[0] >> 1,
            ..TcpInfo::default()
        };
        r.on_segment(&config, &mut mem, dir, &tcp, payload, &mut sink);
        // Buffered out-of-order data plus retained unacknowledged data, never past the cap.
        assert!(mem.used >= r.buffered());
        assert!(mem.used <= mem.cap);
    }
    r.finish(&mut mem, &mut sink);
    r.release(&mut mem);
    assert_eq!(mem.used, 0);
});
