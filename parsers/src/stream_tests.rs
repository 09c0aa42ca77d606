use super::*;
use crate::packet::TCP_PSH;

#[derive(Default)]
struct Recorder {
    data: [Vec<u8>; 2],
    /// Every call in order, for checking what came when.
    log: Vec<String>,
    events: Vec<&'static str>,
}

impl StreamSink for Recorder {
    fn data(&mut self, dir: Direction, data: &[u8]) {
        self.data[idx(dir)].extend_from_slice(data);
        self.log.push(format!("{dir:?} data {}", data.len()));
    }
    fn gap(&mut self, dir: Direction, len: u64) {
        self.log.push(format!("{dir:?} gap {len}"));
    }
    fn end(&mut self, dir: Direction) {
        self.log.push(format!("{dir:?} end"));
    }
    fn event(&mut self, _dir: Direction, event: &'static str) {
        self.events.push(event);
    }
}

const CISN: u32 = 1000;
const SISN: u32 = 5000;

struct Conn {
    r: TcpReassembler,
    mem: StreamMemory,
    cfg: StreamConfig,
    sink: Recorder,
}

impl Conn {
    fn new(cfg: StreamConfig) -> Conn {
        Conn {
            r: TcpReassembler::new(),
            mem: StreamMemory::new(1 << 20),
            cfg,
            sink: Recorder::default(),
        }
    }

    fn seg(&mut self, dir: Direction, seq: u32, ack: u32, flags: u8, payload: &[u8]) {
        let tcp = TcpInfo {
            seq,
            ack,
            flags,
            ..TcpInfo::default()
        };
        self.r
            .on_segment(&self.cfg, &mut self.mem, dir, &tcp, payload, &mut self.sink);
    }

    /// SYN, SYN/ACK, ACK: client data starts at CISN+1, server data at SISN+1.
    fn handshake(&mut self) {
        self.seg(Direction::ToServer, CISN, 0, TCP_SYN, b"");
        self.seg(Direction::ToClient, SISN, CISN + 1, TCP_SYN | TCP_ACK, b"");
        self.seg(Direction::ToServer, CISN + 1, SISN + 1, TCP_ACK, b"");
    }

    /// Client data at stream offset `off`, without an ACK so no gap logic runs.
    fn client(&mut self, off: u32, payload: &[u8]) {
        self.seg(Direction::ToServer, CISN + 1 + off, 0, TCP_PSH, payload);
    }

    fn ts(&self) -> &[u8] {
        &self.sink.data[0]
    }
}

#[test]
fn in_order_segments_are_handed_on_as_they_come() {
    let mut c = Conn::new(StreamConfig::default());
    c.handshake();
    c.client(0, b"GET / HTTP/1.1\r\n");
    c.client(16, b"Host: a\r\n\r\n");
    assert_eq!(c.ts(), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(c.sink.log, ["ToServer data 16", "ToServer data 11"]);
    assert_eq!(c.r.buffered(), 0);
    assert_eq!(c.mem.stats.reassembled_bytes, 27);
}

#[test]
fn out_of_order_segments_are_reordered() {
    let mut c = Conn::new(StreamConfig::default());
    c.handshake();
    c.client(8, b"89abcdef");
    c.client(4, b"4567");
    assert!(c.ts().is_empty());
    assert_eq!(c.r.buffered(), 12);
    c.client(0, b"0123");
    assert_eq!(c.ts(), b"0123456789abcdef");
    assert_eq!(c.r.buffered(), 0);
    assert_eq!(c.mem.stats.out_of_order_segments, 2);
}

#[test]
fn retransmissions_are_not_handed_on_twice() {
    let mut c = Conn::new(StreamConfig::default());
    c.handshake();
    c.client(0, b"hello ");
    c.client(0, b"hello ");
    c.client(3, b"lo world");
    assert_eq!(c.ts(), b"hello world");
    assert_eq!(c.mem.stats.retransmissions, 2);
}

/// Old data buffered at [4, 8) = "XXXX"; new data [2, 6) = "bbbb" starts before it.
fn overlap_result(policy: OverlapPolicy) -> (Vec<u8>, Vec<&'static str>) {
    let mut c = Conn::new(StreamConfig {
        policy,
        ..StreamConfig::default()
    });
    c.handshake();
    c.client(4, b"XXXX");
    c.client(2, b"bbbb");
    c.client(0, b"00");
    (c.ts().to_vec(), c.sink.events.clone())
}

#[test]
fn overlap_policies_decide_which_bytes_win() {
    assert_eq!(overlap_result(OverlapPolicy::First).0, b"00bbXXXX");
    assert_eq!(overlap_result(OverlapPolicy::Windows).0, b"00bbXXXX");
    assert_eq!(overlap_result(OverlapPolicy::Last).0, b"00bbbbXX");
    // New data starting before the old segment wins under BSD and Linux.
    assert_eq!(overlap_result(OverlapPolicy::Bsd).0, b"00bbbbXX");
    assert_eq!(overlap_result(OverlapPolicy::Linux).0, b"00bbbbXX");
    let (_, events) = overlap_result(OverlapPolicy::First);
    assert_eq!(events, ["stream.reassembly_overlap_different_data"]);
}

#[test]
fn linux_and_bsd_differ_on_a_longer_segment_at_the_same_start() {
    let run = |policy| {
        let mut c = Conn::new(StreamConfig {
            policy,
            ..StreamConfig::default()
        });
        c.handshake();
        c.client(2, b"XX");
        c.client(2, b"yyyy");
        c.client(0, b"00");
        c.ts().to_vec()
    };
    assert_eq!(run(OverlapPolicy::Linux), b"00yyyy");
    assert_eq!(run(OverlapPolicy::Bsd), b"00XXyy");
}

#[test]
fn identical_overlaps_raise_no_event() {
    let mut c = Conn::new(StreamConfig::default());
    c.handshake();
    c.client(4, b"4567");
    c.client(2, b"234567");
    c.client(0, b"01");
    assert_eq!(c.ts(), b"01234567");
    assert!(c.sink.events.is_empty());
    assert_eq!(c.mem.stats.overlaps, 1);
}

#[test]
fn data_acknowledged_but_never_seen_is_a_gap() {
    let mut c = Conn::new(StreamConfig::default());
    c.handshake();
    c.client(0, b"abcd");
    // Bytes 4..10 are lost; the server acknowledges up to 10, then 10.. arrives.
    c.seg(Direction::ToClient, SISN + 1, CISN + 1 + 10, TCP_ACK, b"");
    c.client(10, b"klmn");
    assert_eq!(c.ts(), b"abcdklmn");
    assert_eq!(
        c.sink.log,
        ["ToServer data 4", "ToServer gap 6", "ToServer data 4"]
    );
    assert_eq!(c.sink.events, ["stream.reassembly_seq_gap"]);
    assert_eq!(c.mem.stats.gap_bytes, 6);
}

#[test]
fn a_gap_releases_buffered_data_behind_it() {
    let mut c = Conn::new(StreamConfig::default());
    c.handshake();
    c.client(0, b"ab");
    c.client(6, b"ghij");
    c.seg(Direction::ToClient, SISN + 1, CISN + 1 + 10, TCP_ACK, b"");
    assert_eq!(c.ts(), b"abghij");
    assert_eq!(
        c.sink.log,
        ["ToServer data 2", "ToServer gap 4", "ToServer data 4"]
    );
    assert_eq!(c.r.buffered(), 0);
}

#[test]
fn the_ack_of_a_fin_is_not_a_gap() {
    let mut c = Conn::new(StreamConfig::default());
    c.handshake();
    c.seg(
        Direction::ToServer,
        CISN + 1,
        SISN + 1,
        TCP_ACK | TCP_FIN,
        b"bye",
    );
    c.seg(Direction::ToClient, SISN + 1, CISN + 1 + 4, TCP_ACK, b"");
    assert_eq!(c.sink.log, ["ToServer data 3", "ToServer end"]);
    assert!(c.sink.events.is_empty());
}

#[test]
fn fin_ends_the_direction_once_its_data_is_in() {
    let mut c = Conn::new(StreamConfig::default());
    c.handshake();
    c.seg(Direction::ToServer, CISN + 1 + 3, 0, TCP_FIN, b"def");
    assert!(c.sink.log.is_empty());
    c.client(0, b"abc");
    assert_eq!(
        c.sink.log,
        ["ToServer data 3", "ToServer data 3", "ToServer end"]
    );
}

#[test]
fn rst_flushes_both_directions_across_holes() {
    let mut c = Conn::new(StreamConfig::default());
    c.handshake();
    c.client(0, b"ab");
    c.client(4, b"ef");
    c.seg(Direction::ToClient, SISN + 1, 0, TCP_RST, b"");
    assert_eq!(c.ts(), b"abef");
    assert_eq!(
        c.sink.log,
        [
            "ToServer data 2",
            "ToServer gap 2",
            "ToServer data 2",
            "ToServer end",
            "ToClient end"
        ]
    );
    assert_eq!(c.r.buffered(), 0);
}

#[test]
fn depth_cuts_each_direction() {
    let mut c = Conn::new(StreamConfig {
        depth: 10,
        ..StreamConfig::default()
    });
    c.handshake();
    c.client(12, b"zz");
    assert_eq!(c.mem.used, 0, "data past the depth is not buffered");
    c.client(0, b"0123456");
    c.client(7, b"789abc");
    c.client(13, b"def");
    assert_eq!(c.ts(), b"0123456789");
    assert_eq!(c.mem.stats.depth_reached, 1);
}

#[test]
fn memcap_bounds_buffered_data() {
    let mut c = Conn::new(StreamConfig::default());
    c.mem = StreamMemory::new(8);
    c.handshake();
    c.client(4, b"4567");
    c.client(10, b"abcdef");
    assert_eq!(c.mem.used, 4);
    assert_eq!(c.mem.stats.memcap_drops, 1);
    c.client(0, b"0123");
    assert_eq!(c.ts(), b"01234567");
}

#[test]
fn without_a_handshake_only_midstream_reassembles() {
    let mut c = Conn::new(StreamConfig::default());
    c.seg(Direction::ToServer, 777, 1, TCP_ACK, b"hello");
    assert!(c.ts().is_empty());

    let mut c = Conn::new(StreamConfig {
        midstream: true,
        ..StreamConfig::default()
    });
    c.seg(Direction::ToServer, 777, 1, TCP_ACK, b"hello");
    c.seg(Direction::ToServer, 782, 1, TCP_ACK, b" you");
    assert_eq!(c.ts(), b"hello you");
    assert_eq!(c.mem.stats.midstream_pickups, 1);
}

#[test]
fn sequence_numbers_wrap() {
    let mut c = Conn::new(StreamConfig::default());
    let isn = u32::MAX - 2;
    c.seg(Direction::ToServer, isn, 0, TCP_SYN, b"");
    c.seg(
        Direction::ToServer,
        isn.wrapping_add(5),
        0,
        TCP_ACK,
        b"efgh",
    );
    c.seg(
        Direction::ToServer,
        isn.wrapping_add(1),
        0,
        TCP_ACK,
        b"abcd",
    );
    assert_eq!(c.ts(), b"abcdefgh");
}

#[test]
fn fast_open_data_on_the_syn_is_kept() {
    let mut c = Conn::new(StreamConfig::default());
    c.seg(Direction::ToServer, CISN, 0, TCP_SYN, b"GET");
    c.client(3, b" /");
    assert_eq!(c.ts(), b"GET /");
}

#[test]
fn segments_far_outside_the_window_are_ignored() {
    let mut c = Conn::new(StreamConfig::default());
    c.handshake();
    c.client(0, b"ok");
    c.seg(
        Direction::ToServer,
        CISN + 1 + (1 << 31),
        0,
        TCP_ACK,
        b"junk",
    );
    c.client(2, b"!");
    assert_eq!(c.ts(), b"ok!");
    assert_eq!(c.r.buffered(), 0);
}

/// Any arrival order of a stream's segments (with duplicates) gives the same bytes.
#[test]
fn any_arrival_order_gives_the_same_stream() {
    let stream: Vec<u8> = (0..2000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..200 {
        let mut segs = Vec::new();
        let mut off = 0usize;
        while off < stream.len() {
            let len = 1 + (next() % 300) as usize;
            let end = (off + len).min(stream.len());
            segs.push((off, end));
            // Some overlapping retransmissions of an earlier range.
            if next() % 4 == 0 {
                let back = (next() % 100) as usize;
                segs.push((off.saturating_sub(back), end));
            }
            off = end;
        }
        for i in (1..segs.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            segs.swap(i, j);
        }
        let mut c = Conn::new(StreamConfig::default());
        c.handshake();
        for (s, e) in segs {
            c.client(s as u32, &stream[s..e]);
        }
        assert_eq!(c.ts(), &stream[..]);
        assert!(c.sink.events.is_empty());
        assert_eq!(c.r.buffered(), 0);
    }
}

#[test]
fn a_retransmission_that_rewrites_inspected_data_is_reported() {
    let mut c = Conn::new(StreamConfig::default());
    c.handshake();
    c.client(0, b"GET /index.html");
    c.client(4, b"/evil.html");
    assert_eq!(c.ts(), b"GET /index.html");
    assert_eq!(c.sink.events, ["stream.reassembly_overlap_different_data"]);
    // An identical retransmission is not.
    c.client(0, b"GET /index");
    assert_eq!(c.sink.events.len(), 1);
}

#[test]
fn acknowledged_data_is_no_longer_retained() {
    let mut c = Conn::new(StreamConfig::default());
    c.handshake();
    c.client(0, b"0123456789");
    assert_eq!(c.mem.used, 10);
    c.seg(Direction::ToClient, SISN + 1, CISN + 1 + 6, TCP_ACK, b"");
    assert_eq!(c.mem.used, 4);
    // A rewrite of acknowledged bytes can no longer be compared; of unacknowledged ones it can.
    c.client(0, b"xxxxxx");
    assert!(c.sink.events.is_empty());
    c.client(6, b"zz");
    assert_eq!(c.sink.events, ["stream.reassembly_overlap_different_data"]);
    c.seg(Direction::ToClient, SISN + 1, CISN + 1 + 10, TCP_ACK, b"");
    assert_eq!(c.mem.used, 0);
}

#[test]
fn retention_is_bounded_without_acknowledgements() {
    let mut c = Conn::new(StreamConfig {
        max_retained_per_direction: 100,
        ..StreamConfig::default()
    });
    c.handshake();
    let mut capacity = 0;
    for i in 0..50u32 {
        c.client(i * 30, &[b'a'; 30]);
        assert!(c.mem.used <= 100);
        // Starting over keeps the buffer: it is not grown from nothing again.
        let now = c.r.halves[0].retained.capacity();
        assert!(now >= capacity);
        capacity = now;
    }
    assert_eq!(c.ts().len(), 1500);
}

#[test]
fn stream_inspection_keeps_acknowledged_bytes_it_still_needs() {
    let mut c = Conn::new(StreamConfig::default());
    c.handshake();
    c.client(0, b"0123456789");
    c.r.keep_raw_from(&mut c.mem, Direction::ToServer, 4);
    c.client(10, b"abc");
    c.seg(Direction::ToClient, SISN + 1, CISN + 1 + 13, TCP_ACK, b"");
    // Acknowledged, but inspection wants offset 4 on: kept, and charged.
    assert_eq!(c.r.raw(Direction::ToServer), (4, &b"456789abc"[..]));
    assert_eq!(c.mem.used, 9);
    // Acknowledged bytes it keeps are not compared with retransmissions (as before).
    c.client(5, b"xx");
    assert!(c.sink.events.is_empty());
    // Moving the point on releases what is acknowledged behind it.
    c.r.keep_raw_from(&mut c.mem, Direction::ToServer, 11);
    assert_eq!(c.r.raw(Direction::ToServer), (11, &b"bc"[..]));
    assert_eq!(c.mem.used, 2);
    // A gap starts the raw stream over after it.
    c.seg(Direction::ToClient, SISN + 1, CISN + 1 + 20, TCP_ACK, b"");
    c.client(20, b"zz");
    assert_eq!(c.r.raw(Direction::ToServer), (20, &b"zz"[..]));
}
