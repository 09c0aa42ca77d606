//! DNS parser fuzzing: the input is a script of UDP datagrams and TCP stream pieces for both
//! directions, with fuzzer-chosen split points and gaps; every record is serialized.
#![no_main]

use vigil_parsers::app::dns::{probe_tcp, probe_udp, DnsConfig, DnsParser};
use vigil_parsers::app::{AppOutput, AppParser, AppRecord, Direction};

fn drain(out: &mut AppOutput) {
    for r in &out.records {
        let AppRecord::Dns(m) = r else {
            panic!("non-dns record")
        };
        let (kind, v) = r.eve_object().expect("serialize");
        assert_eq!(kind, "dns");
        assert_eq!(v["version"], 3);
        assert!(m.answers.len() <= 1024 && m.queries.len() <= 1024);
        let _ = m.queries_rrnames().count();
    }
    out.clear();
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let config = DnsConfig {
        grouped: ctl & 1 != 0,
        rdata_hex_for_other_types: ctl & 2 != 0,
        ..DnsConfig::default()
    };
    let mut udp = DnsParser::new_udp(config.clone());
    let mut tcp = DnsParser::new_tcp(config.clone());
    let mut whole = DnsParser::new_tcp(config.clone());
    let mut out = AppOutput::default();
    let mut whole_out = AppOutput::default();
    let mut streams: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut gapped = false;

    // Chunks: [op][len][bytes...]; op bit 0 = direction, bit 1 = gap before, len = chunk size.
    let mut i = rest;
    while let Some((&op, r)) = i.split_first() {
        let Some((&len, r)) = r.split_first() else {
            break;
        };
        let n = usize::from(len).min(r.len());
        let (chunk, r) = r.split_at(n);
        i = r;
        let dir = if op & 1 == 0 {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        let _ = probe_udp(dir, chunk);
        let _ = probe_tcp(dir, chunk);
        udp.parse(dir, chunk, 0, &mut out);
        drain(&mut out);
        if op & 2 != 0 {
            tcp.gap(dir, 1 + u64::from(op >> 2), &mut out);
            gapped = true;
        }
        tcp.parse(dir, chunk, 0, &mut out);
        drain(&mut out);
        streams[usize::from(op & 1)].extend_from_slice(chunk);
    }
    tcp.end_of_stream(Direction::ToServer, 0, &mut out);
    tcp.finish(0, &mut out);
    drain(&mut out);

    // Split invariance: with no gaps, one direction fed whole gives the same messages.
    if !gapped {
        let mut split = DnsParser::new_tcp(config);
        let mut split_out = AppOutput::default();
        for piece in streams[1].chunks(3) {
            split.parse(Direction::ToClient, piece, 0, &mut split_out);
        }
        whole.parse(Direction::ToClient, &streams[1], 0, &mut whole_out);
        assert_eq!(split_out.records, whole_out.records);
        assert_eq!(split_out.events, whole_out.events);
    }
});
