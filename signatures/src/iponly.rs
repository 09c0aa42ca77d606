//! Rules that look only at addresses (IP reputation lists such as ET's DROP and CnC groups):
//! indexed by address so a packet finds its few candidates with two binary searches instead
//! of checking every such rule. As in Suricata's IP-only engine, a flow is checked once per
//! direction.

use std::net::IpAddr;

use crate::address::{AddressSet, PortSet};

/// Address ranges mapped to the rules they belong to, as elementary segments: segment `i`
/// covers `[starts[i], starts[i+1])` and holds `rules[i]`.
#[derive(Debug, Default)]
struct Segments<T> {
    starts: Vec<T>,
    rules: Vec<Vec<u32>>,
}

impl<T: Copy + Ord> Segments<T> {
    fn build(ranges: Vec<(T, T, u32)>, succ: impl Fn(T) -> Option<T>) -> Segments<T> {
        // Sweep over range ends: +rule at lo, -rule after hi.
        let mut events: Vec<(T, bool, u32)> = Vec::with_capacity(ranges.len() * 2);
        for (lo, hi, rule) in ranges {
            events.push((lo, true, rule));
            if let Some(after) = succ(hi) {
                events.push((after, false, rule));
            }
        }
        events.sort_unstable_by_key(|e| e.0);
        let mut seg = Segments {
            starts: Vec::new(),
            rules: Vec::new(),
        };
        let mut active: Vec<u32> = Vec::new();
        let mut i = 0;
        while i < events.len() {
            let at = events[i].0;
            while i < events.len() && events[i].0 == at {
                let (_, add, rule) = events[i];
                if add {
                    active.push(rule);
                } else if let Some(p) = active.iter().position(|&r| r == rule) {
                    active.swap_remove(p);
                }
                i += 1;
            }
            let mut now = active.clone();
            now.sort_unstable();
            now.dedup();
            seg.starts.push(at);
            seg.rules.push(now);
        }
        seg
    }

    fn lookup(&self, addr: T) -> &[u32] {
        let i = self.starts.partition_point(|&s| s <= addr);
        if i == 0 {
            return &[];
        }
        &self.rules[i - 1]
    }
}

/// Rules without a fast pattern (header-only checks), indexed by their more selective port
/// side so a packet only evaluates those its ports can match.
#[derive(Debug, Default)]
pub struct PortIndex {
    by_src: Segments<u16>,
    by_dst: Segments<u16>,
    pub len: usize,
}

impl PortIndex {
    /// `rules`: (rule id, source ports, destination ports).
    pub fn build<'a>(rules: impl Iterator<Item = (u32, &'a PortSet, &'a PortSet)>) -> PortIndex {
        let mut src = Vec::new();
        let mut dst = Vec::new();
        let mut len = 0;
        for (id, sp, dp) in rules {
            len += 1;
            let cover = |p: &PortSet| -> u32 {
                p.ranges()
                    .iter()
                    .map(|&(lo, hi)| (hi - lo) as u32 + 1)
                    .sum()
            };
            if cover(sp) < cover(dp) {
                src.extend(sp.ranges().iter().map(|&(lo, hi)| (lo, hi, id)));
            } else {
                dst.extend(dp.ranges().iter().map(|&(lo, hi)| (lo, hi, id)));
            }
        }
        PortIndex {
            by_src: Segments::build(src, |v: u16| v.checked_add(1)),
            by_dst: Segments::build(dst, |v: u16| v.checked_add(1)),
            len,
        }
    }

    pub fn candidates(&self, sport: u16, dport: u16, mut f: impl FnMut(u32)) {
        self.by_src.lookup(sport).iter().for_each(|&r| f(r));
        self.by_dst.lookup(dport).iter().for_each(|&r| f(r));
    }
}

/// IP-only rules indexed by their more selective address side.
#[derive(Debug, Default)]
pub struct IpOnlyIndex {
    by_src_v4: Segments<u32>,
    by_src_v6: Segments<u128>,
    by_dst_v4: Segments<u32>,
    by_dst_v6: Segments<u128>,
    /// Bidirectional rules are looked up with the packet's addresses swapped as well.
    pub len: usize,
}

impl IpOnlyIndex {
    /// `rules`: (rule id, source set, destination set).
    pub fn build<'a>(
        rules: impl Iterator<Item = (u32, &'a AddressSet, &'a AddressSet)>,
    ) -> IpOnlyIndex {
        let mut src4 = Vec::new();
        let mut src6 = Vec::new();
        let mut dst4 = Vec::new();
        let mut dst6 = Vec::new();
        let mut len = 0;
        for (id, src, dst) in rules {
            len += 1;
            let (set, v4, v6) = if src.coverage() <= dst.coverage() {
                (src, &mut src4, &mut src6)
            } else {
                (dst, &mut dst4, &mut dst6)
            };
            v4.extend(set.v4_ranges().iter().map(|&(lo, hi)| (lo, hi, id)));
            v6.extend(set.v6_ranges().iter().map(|&(lo, hi)| (lo, hi, id)));
        }
        IpOnlyIndex {
            by_src_v4: Segments::build(src4, |v: u32| v.checked_add(1)),
            by_src_v6: Segments::build(src6, |v: u128| v.checked_add(1)),
            by_dst_v4: Segments::build(dst4, |v: u32| v.checked_add(1)),
            by_dst_v6: Segments::build(dst6, |v: u128| v.checked_add(1)),
            len,
        }
    }

    /// Calls `f` with every rule indexed under `src` as source or `dst` as destination (a
    /// candidate: the caller still checks the whole header).
    pub fn candidates(&self, src: IpAddr, dst: IpAddr, mut f: impl FnMut(u32)) {
        match src {
            IpAddr::V4(a) => self
                .by_src_v4
                .lookup(u32::from(a))
                .iter()
                .for_each(|&r| f(r)),
            IpAddr::V6(a) => self
                .by_src_v6
                .lookup(u128::from(a))
                .iter()
                .for_each(|&r| f(r)),
        }
        match dst {
            IpAddr::V4(a) => self
                .by_dst_v4
                .lookup(u32::from(a))
                .iter()
                .for_each(|&r| f(r)),
            IpAddr::V6(a) => self
                .by_dst_v6
                .lookup(u128::from(a))
                .iter()
                .for_each(|&r| f(r)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Vars;

    #[test]
    fn finds_rules_by_the_selective_side() {
        let vars = Vars::default();
        let home = vars.address_set("$HOME_NET").unwrap();
        let ext = vars.address_set("$EXTERNAL_NET").unwrap();
        let bad = vars.address_set("[198.51.100.0/24,203.0.113.7]").unwrap();
        let idx =
            IpOnlyIndex::build([(0, &home, &bad), (1, &bad, &home), (2, &ext, &home)].into_iter());
        let mut got = Vec::new();
        idx.candidates(
            "10.0.0.1".parse().unwrap(),
            "198.51.100.9".parse().unwrap(),
            |r| got.push(r),
        );
        assert_eq!(got, vec![0]);
        got.clear();
        idx.candidates(
            "203.0.113.7".parse().unwrap(),
            "10.0.0.1".parse().unwrap(),
            |r| got.push(r),
        );
        got.sort();
        // Rule 2 is indexed by its destination ($HOME_NET is smaller than $EXTERNAL_NET).
        assert_eq!(got, vec![1, 2]);
        got.clear();
        idx.candidates(
            "8.8.8.8".parse().unwrap(),
            "9.9.9.9".parse().unwrap(),
            |r| got.push(r),
        );
        assert!(got.is_empty());
    }
}
