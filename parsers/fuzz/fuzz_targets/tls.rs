#![no_main]
//! Feeds both directions of a TLS parser in fuzzer-chosen pieces, with gaps, end of stream and
//! finish, and serializes every record: no panic, bounded work.

use vigil_parsers::app::tls::{probe, TlsConfig, TlsParser};
use vigil_parsers::app::{AppOutput, AppParser, Direction};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // First byte picks the logging options, so every serializer branch is reachable.
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let cfg = TlsConfig {
        extended: flags & 1 != 0,
        ja3: flags & 2 != 0,
        ja4: flags & 4 != 0,
        certificate: flags & 8 != 0,
        chain: flags & 8 != 0,
        client_certificate: flags & 16 != 0,
        client_chain: flags & 16 != 0,
        client_handshake: flags & 32 != 0,
        server_handshake: flags & 32 != 0,
        session_resumption: flags & 64 != 0,
    };
    let _ = probe(Direction::ToServer, rest);
    let _ = probe(Direction::ToClient, rest);
    let mut p = TlsParser::new(cfg);
    let mut out = AppOutput::default();
    // Chunks: a control byte (direction, gap, length) then that many bytes.
    while let Some((&ctl, tail)) = rest.split_first() {
        let dir = if ctl & 0x80 != 0 {
            Direction::ToClient
        } else {
            Direction::ToServer
        };
        if ctl & 0x7f == 0x7f {
            let len = tail.first().copied().unwrap_or(0);
            p.gap(dir, u64::from(len), &mut out);
            rest = tail.get(1..).unwrap_or_default();
            continue;
        }
        if ctl & 0x7f == 0x7e {
            p.end_of_stream(dir, 0, &mut out);
            rest = tail;
            continue;
        }
        let n = (usize::from(ctl & 0x7f) * 8 + 1).min(tail.len());
        let (piece, next) = tail.split_at(n);
        p.parse(dir, piece, 0, &mut out);
        rest = next;
        for r in out.records.drain(..) {
            let _ = r.eve_object().expect("serializable");
        }
        out.events.clear();
        let _ = p.is_done();
    }
    p.finish(0, &mut out);
    for r in out.records.drain(..) {
        let _ = r.eve_object().expect("serializable");
    }
});
