//! Feeds fuzzer bytes to the SSH parser as two directions cut into fuzzer-chosen pieces, with
//! gaps and stream ends, and serializes every record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_parsers::app::ssh::{probe, SshConfig, SshParser};
use vigil_parsers::app::{AppOutput, AppParser, Direction};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut parser = SshParser::new(SshConfig {
        hassh: flags & 1 != 0,
    });
    let mut out = AppOutput::default();
    // Each step: one control byte (direction, action, piece length), then the piece.
    while let Some((&ctl, tail)) = rest.split_first() {
        let dir = if ctl & 0x80 != 0 {
            Direction::ToClient
        } else {
            Direction::ToServer
        };
        let len = usize::from(ctl & 0x3f).min(tail.len());
        let (piece, tail) = tail.split_at(len);
        rest = tail;
        match ctl & 0x40 {
            0 => {
                let _ = probe(dir, piece);
                parser.parse(dir, piece, 0, &mut out);
            }
            _ => match piece.first().copied().unwrap_or(0) % 8 {
                0 => parser.gap(dir, u64::from(ctl), &mut out),
                1 => parser.end_of_stream(dir, 0, &mut out),
                _ => parser.parse(dir, piece, 0, &mut out),
            },
        }
        let _ = parser.is_done();
        for r in out.records.drain(..) {
            let _ = r.eve_object();
        }
        out.events.clear();
    }
    parser.finish(0, &mut out);
    for r in out.records.drain(..) {
        let _ = r.eve_object();
    }
});
