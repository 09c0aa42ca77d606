#![no_main]
//! HTTP parser fuzz target: the first bytes choose how the rest is cut into pieces, which
//! direction each piece goes to, and where gaps and stream ends fall. Every record is serialized.

use vigil_parsers::app::http::{DumpHeaders, HttpConfig, HttpParser};
use vigil_parsers::app::{AppOutput, AppParser, Direction};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let Some((plan, mut body)) = rest.split_at_checked(16.min(rest.len())) else {
        return;
    };
    // Small limits make the limit paths reachable.
    let small = ctl & 1 != 0;
    let cfg = HttpConfig {
        request_body_limit: if small { 64 } else { 100 * 1024 },
        response_body_limit: if small { 64 } else { 100 * 1024 },
        max_line_len: if small { 80 } else { 18_000 },
        max_head_size: if small { 400 } else { 64 * 1024 },
        max_headers: if small { 4 } else { 1024 },
        decompress_limit: if small { 256 } else { 1024 * 1024 },
        max_pending_txs: if small { 2 } else { 256 },
        dump_all_headers: DumpHeaders::Both,
    };
    let mut p = HttpParser::new(cfg);
    let mut out = AppOutput::default();
    let mut i = 0usize;
    while !body.is_empty() {
        let b = plan.get(i % plan.len().max(1)).copied().unwrap_or(0xff);
        i += 1;
        let dir = if b & 0x80 == 0 {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        let n = (usize::from(b & 0x3f) + 1).min(body.len());
        let (piece, r) = body.split_at(n);
        body = r;
        p.parse(dir, piece, 0, &mut out);
        if b & 0x40 != 0 && i % 3 == 0 {
            p.gap(dir, u64::from(b & 0x0f), &mut out);
        }
        if b & 0x40 != 0 && i % 7 == 0 {
            p.end_of_stream(dir, 0, &mut out);
        }
        for r in out.records.drain(..) {
            let _ = r.eve_object();
        }
        out.events.clear();
        let _ = p.is_done();
    }
    p.end_of_stream(Direction::ToClient, 0, &mut out);
    p.finish(0, &mut out);
    for r in out.records.drain(..) {
        let _ = r.eve_object();
    }
});
