//! Full evaluation of one buffer's match list, with Suricata's backtracking for relative
//! matches: when a later relative match fails, the previous content or pcre is retried at its
//! next occurrence.

use crate::keywords::pcre::PcreOutcome;
use crate::keywords::Cursor;
use crate::sig::Match;

/// Suricata's `inspection_recursion_limit`: bounds the work a crafted buffer can cause.
const RECURSION_LIMIT: u32 = 3000;

/// Per-call scratch: variable slots and decoded base64 bytes.
pub struct InspectScratch {
    pub vars: Vec<u64>,
    pub b64: Vec<u8>,
    budget: u32,
    /// Stream offset of the inspected buffer's first byte (0 for packets and app-layer buffers).
    base: u64,
    /// A match must reach past this position (the first byte not inspected before), so bytes a
    /// stream inspection already covered never alert twice.
    need_end: Option<usize>,
}

impl Default for InspectScratch {
    fn default() -> Self {
        InspectScratch {
            vars: Vec::new(),
            b64: Vec::new(),
            budget: RECURSION_LIMIT,
            base: 0,
            need_end: None,
        }
    }
}

impl InspectScratch {
    pub fn reset(&mut self, var_slots: usize) {
        self.vars.clear();
        self.vars.resize(var_slots, 0);
        self.budget = RECURSION_LIMIT;
    }
}

/// Whether `matches` hold on `buf`.
pub fn inspect(matches: &[Match], buf: &[u8], scratch: &mut InspectScratch) -> bool {
    scratch.base = 0;
    scratch.need_end = None;
    step(matches, 0, buf, 0, 0, scratch)
}

/// Whether `matches` hold on `buf`, a piece of a TCP stream that starts at stream offset
/// `base`. Absolute `offset`/`depth` count from the stream's start. With `new_from`, some
/// content or pcre match must end past that position: only matches that take in bytes not yet
/// inspected count, and every content is retried at its later occurrences to find one.
pub fn inspect_stream(
    matches: &[Match],
    buf: &[u8],
    base: u64,
    new_from: Option<usize>,
    scratch: &mut InspectScratch,
) -> bool {
    scratch.base = base;
    scratch.need_end = new_from;
    let ok = step(matches, 0, buf, 0, 0, scratch);
    scratch.base = 0;
    scratch.need_end = None;
    ok
}

/// Whether a failure after match `i` is worth retrying `i` at its next occurrence.
fn retry_after(matches: &[Match], i: usize, s: &InspectScratch) -> bool {
    s.need_end.is_some() || matches.get(i + 1).is_some_and(Match::is_relative)
}

/// Matches `matches[i..]` from `prev_end`; `max_end` is the furthest end of a content or pcre
/// match so far.
fn step(
    matches: &[Match],
    i: usize,
    buf: &[u8],
    prev_end: usize,
    max_end: usize,
    s: &mut InspectScratch,
) -> bool {
    let Some(m) = matches.get(i) else {
        return s.need_end.is_none_or(|n| max_end > n);
    };
    if s.budget == 0 {
        return false;
    }
    s.budget -= 1;
    match m {
        Match::Content(c) => {
            let Some((mut start, end)) = c.window_at(buf.len(), prev_end, &s.vars, s.base) else {
                // No room: a negated content is then absent.
                return c.negated && step(matches, i + 1, buf, prev_end, max_end, s);
            };
            if c.negated {
                return c.find(buf, start, end).is_none()
                    && step(matches, i + 1, buf, prev_end, max_end, s);
            }
            loop {
                let Some(at) = c.find(buf, start, end) else {
                    return false;
                };
                let at_end = at + c.pattern.len();
                if step(matches, i + 1, buf, at_end, max_end.max(at_end), s) {
                    return true;
                }
                if !retry_after(matches, i, s) || c.endswith || s.budget == 0 {
                    return false;
                }
                start = at + 1;
            }
        }
        Match::Pcre(p) => {
            // With `R` the subject starts at the previous match (so `^` anchors there); a retry
            // skips into the subject rather than moving its start.
            let base = if p.relative { prev_end } else { 0 };
            let cur = Cursor { buf, pos: base };
            if p.negated {
                return match p.search(&cur, 0) {
                    PcreOutcome::NoMatch => step(matches, i + 1, buf, prev_end, max_end, s),
                    PcreOutcome::Match { .. } | PcreOutcome::Error => false,
                };
            }
            let mut skip = 0;
            loop {
                let PcreOutcome::Match { start, end } = p.search(&cur, skip) else {
                    return false;
                };
                if step(matches, i + 1, buf, end, max_end.max(end), s) {
                    return true;
                }
                if !retry_after(matches, i, s) || s.budget == 0 || start >= buf.len() {
                    return false;
                }
                skip = start + 1 - base;
            }
        }
        Match::ByteTest(t) => {
            let cur = Cursor { buf, pos: prev_end };
            t.eval(&cur, &s.vars) && step(matches, i + 1, buf, prev_end, max_end, s)
        }
        Match::ByteJump(j) => {
            let cur = Cursor { buf, pos: prev_end };
            match j.eval(&cur, &s.vars) {
                Some(pos) => step(matches, i + 1, buf, pos, max_end, s),
                None => false,
            }
        }
        Match::ByteExtract(e) => {
            let cur = Cursor { buf, pos: prev_end };
            match e.eval(&cur, &mut s.vars) {
                Some(pos) => step(matches, i + 1, buf, pos, max_end, s),
                None => false,
            }
        }
        Match::ByteMath(bm) => {
            let cur = Cursor { buf, pos: prev_end };
            match bm.eval(&cur, &mut s.vars) {
                Some(pos) => step(matches, i + 1, buf, pos, max_end, s),
                None => false,
            }
        }
        Match::IsDataAt(d) => {
            let cur = Cursor { buf, pos: prev_end };
            d.eval(&cur, &s.vars) && step(matches, i + 1, buf, prev_end, max_end, s)
        }
        Match::Bsize(cmp) => {
            cmp.test(buf.len() as u64) && step(matches, i + 1, buf, prev_end, max_end, s)
        }
        Match::Base64Decode(d) => {
            let cur = Cursor { buf, pos: prev_end };
            let mut out = std::mem::take(&mut s.b64);
            out.clear();
            let ok = d.decode(&cur, &mut out);
            s.b64 = out;
            ok && step(matches, i + 1, buf, prev_end, max_end, s)
        }
        Match::Base64Data => {
            // The rest of the list inspects the decoded bytes, from their start.
            let decoded = std::mem::take(&mut s.b64);
            // Decoded bytes are a buffer of their own, not a piece of the stream.
            let base = std::mem::take(&mut s.base);
            let ok = step(matches, i + 1, &decoded, 0, max_end, s);
            s.base = base;
            s.b64 = decoded;
            ok
        }
    }
}
