//! Packet rule groups, as Suricata's signature group heads: a packet's transport, direction and
//! server port pick one group, and only that group's fast patterns are scanned. Hyperscan's
//! speed falls steeply with the number of literals (≈1.4 GB/s at 250, 0.3 GB/s at 2,200 on
//! ET Open's packet rules here), and most packet rules name one service port and one direction.

use std::collections::{BTreeMap, HashMap};

use crate::sig::{HeaderMatch, IpProto, Signature};

/// Transport classes with separate groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    Tcp,
    Udp,
    /// Everything else (ICMP, GRE, …): ports do not apply.
    Other,
}

impl Class {
    pub fn of(proto: u8) -> Class {
        match proto {
            6 => Class::Tcp,
            17 => Class::Udp,
            _ => Class::Other,
        }
    }

    pub const ALL: [Class; 3] = [Class::Tcp, Class::Udp, Class::Other];

    /// Index of (class, direction) in [`GroupMap`]'s table.
    fn slot(self, to_server: bool) -> usize {
        self as usize * 2 + usize::from(to_server)
    }
}

/// Ports that get a group of their own per class and direction; the rest share one.
const PORTS_PER_DIRECTION: usize = 24;

/// Ports whose group also holds the common group's rules, as Suricata's group heads do, so their
/// packets take one scan instead of two: a second scan over the same bytes, even with a few dozen
/// literals, cost ~7 % of a worker on ET Open's HTTP. Chosen among [`BUSY_TCP_PORTS`] /
/// [`BUSY_UDP_PORTS`] first, [`INSPECTED_BULK_PORTS`] before the others, then by rules naming
/// them.
const MERGED_PORTS_PER_DIRECTION: usize = 3;

/// HTTP's ports: they carry most of the bytes whose payload is inspected (TLS's is not, once
/// encrypted). Ranked by rules alone, 8080's responses (named by 2 of ET Open's to-client rules,
/// 445 by 9) were scanned twice: 18 % of the reference capture's inspected bytes.
const INSPECTED_BULK_PORTS: [u16; 2] = [80, 8080];

/// Suricata's `detect.grouping.tcp-whitelist` / `udp-whitelist` defaults: the ports that carry
/// most traffic on a typical network, and so are worth a merged group. Counting rules alone
/// picks ports such as 81, which every `$HTTP_PORTS` rule names as often as 8080.
const BUSY_TCP_PORTS: [u16; 11] = [53, 80, 139, 443, 445, 1433, 3306, 3389, 6666, 6667, 8080];
const BUSY_UDP_PORTS: [u16; 3] = [53, 135, 5060];

/// Merging copies the common group into each merged port's database; past this many rules the
/// extra compile time (~0.3 s at 500 literals, 0.7 s at 860) and memory are not worth it.
const MERGE_COMMON_MAX_RULES: usize = 600;

/// One class and direction: the common group, (port, group, whether that group holds the
/// common rules too) by port, the other ports' group.
type DirectionGroups = (u32, Vec<(u16, u32, bool)>, u32);

/// Which group each (class, direction, server port) uses.
#[derive(Debug, Default)]
pub struct GroupMap {
    /// Per (class, to_server) at [`Class::slot`] (looked up per packet, so a table rather than
    /// a hashed map): the group every port scans (rules for any port), then (port, group)
    /// sorted by port, and the group of the other ports.
    map: [Option<DirectionGroups>; 6],
    /// Each group's rule ids, ascending.
    pub groups: Vec<Vec<u32>>,
}

impl GroupMap {
    /// The groups a packet scans: rules for any port and rules for its server port, or one
    /// group holding both for a merged port.
    pub fn groups(
        &self,
        class: Class,
        to_server: bool,
        server_port: u16,
    ) -> Option<(u32, Option<u32>)> {
        let (common, ports, rest) = self.map[class.slot(to_server)].as_ref()?;
        Some(match ports.binary_search_by_key(&server_port, |p| p.0) {
            Ok(i) if ports[i].2 => (ports[i].1, None),
            Ok(i) => (*common, Some(ports[i].1)),
            Err(_) => (*common, Some(*rest)),
        })
    }

    /// Groups the rules `ids` (packet rules with a fast pattern).
    pub fn build(sigs: &[Signature], ids: &[u32]) -> GroupMap {
        let mut out = GroupMap::default();
        let mut unique: HashMap<Vec<u32>, u32> = HashMap::new();
        for class in Class::ALL {
            for to_server in [true, false] {
                let members: Vec<u32> = ids
                    .iter()
                    .copied()
                    .filter(|&i| {
                        let s = &sigs[i as usize];
                        admits(s, class) && s.flow.to_server.is_none_or(|d| d == to_server)
                    })
                    .collect();
                let port_sets = |s: &Signature| {
                    let (fwd, back) = if to_server {
                        (&s.dst_ports, &s.src_ports)
                    } else {
                        (&s.src_ports, &s.dst_ports)
                    };
                    let mut r: Vec<(u16, u16)> = fwd.ranges().to_vec();
                    if s.bidirectional {
                        r.extend_from_slice(back.ranges());
                    }
                    r
                };
                let mut busiest: Vec<u16> = Vec::new();
                let (own_ports, rest_needed): (Vec<u16>, bool) = if class == Class::Other {
                    (Vec::new(), true)
                } else {
                    // Ports named by narrow port sets, most rules first.
                    let mut counts: BTreeMap<u16, usize> = BTreeMap::new();
                    for &i in &members {
                        for (lo, hi) in port_sets(&sigs[i as usize]) {
                            if hi - lo < 16 {
                                for p in lo..=hi {
                                    *counts.entry(p).or_default() += 1;
                                }
                            }
                        }
                    }
                    let mut by_count: Vec<(u16, usize)> = counts.into_iter().collect();
                    by_count.sort_by_key(|&(p, n)| (std::cmp::Reverse(n), p));
                    let busy: &[u16] = if class == Class::Tcp {
                        &BUSY_TCP_PORTS
                    } else {
                        &BUSY_UDP_PORTS
                    };
                    let bulk = |p: &u16| class == Class::Tcp && INSPECTED_BULK_PORTS.contains(p);
                    busiest = by_count
                        .iter()
                        .filter(|(p, _)| bulk(p))
                        .chain(
                            by_count
                                .iter()
                                .filter(|(p, _)| busy.contains(p) && !bulk(p)),
                        )
                        .chain(by_count.iter().filter(|(p, _)| !busy.contains(p)))
                        .take(MERGED_PORTS_PER_DIRECTION)
                        .map(|&(p, _)| p)
                        .collect();
                    let mut own: Vec<u16> = by_count
                        .into_iter()
                        .take(PORTS_PER_DIRECTION)
                        .map(|(p, _)| p)
                        .chain(busiest.iter().copied())
                        .collect();
                    own.sort_unstable();
                    own.dedup();
                    (own, true)
                };
                let mut intern = |list: Vec<u32>, groups: &mut Vec<Vec<u32>>| -> u32 {
                    *unique.entry(list.clone()).or_insert_with(|| {
                        groups.push(list);
                        (groups.len() - 1) as u32
                    })
                };
                // Rules for (nearly) every port, such as `any` or `!80`, are scanned once rather
                // than copied into each port's group; the header check rejects the ports they
                // exclude.
                let (common_list, specific): (Vec<u32>, Vec<u32>) =
                    members.iter().partition(|&&i| {
                        class == Class::Other || {
                            let covered: u32 = port_sets(&sigs[i as usize])
                                .iter()
                                .map(|&(lo, hi)| (hi - lo) as u32 + 1)
                                .sum();
                            covered > 1 << 15
                        }
                    });
                let merge_common =
                    !common_list.is_empty() && common_list.len() <= MERGE_COMMON_MAX_RULES;
                let mut ports = Vec::with_capacity(own_ports.len());
                for &p in &own_ports {
                    let mut list: Vec<u32> = specific
                        .iter()
                        .copied()
                        .filter(|&i| {
                            port_sets(&sigs[i as usize])
                                .iter()
                                .any(|&(lo, hi)| lo <= p && p <= hi)
                        })
                        .collect();
                    let merged = merge_common && !list.is_empty() && busiest.contains(&p);
                    if merged {
                        list.extend_from_slice(&common_list);
                        list.sort_unstable();
                    }
                    ports.push((p, intern(list, &mut out.groups), merged));
                }
                let common = intern(common_list, &mut out.groups);
                let rest_list: Vec<u32> = specific
                    .iter()
                    .copied()
                    .filter(|&i| {
                        port_sets(&sigs[i as usize])
                            .iter()
                            .any(|&(lo, hi)| covers_other_port(lo, hi, &own_ports))
                    })
                    .collect();
                debug_assert!(rest_needed);
                let rest = intern(rest_list, &mut out.groups);
                out.map[class.slot(to_server)] = Some((common, ports, rest));
            }
        }
        out
    }
}

/// Whether `sig` can match a packet of `class`: by the protocol its header names and by its
/// `ip_proto` keywords (`alert ip ... ip_proto:41` never sees a TCP or UDP packet).
pub fn admits(sig: &Signature, class: Class) -> bool {
    let by_header = match sig.ip_proto {
        IpProto::Any => true,
        IpProto::Tcp => class == Class::Tcp,
        IpProto::Udp => class == Class::Udp,
        IpProto::Icmp | IpProto::Icmpv4 | IpProto::Icmpv6 | IpProto::Sctp => class == Class::Other,
    };
    by_header
        && (0..=u8::MAX).any(|proto| {
            Class::of(proto) == class
                && sig.header.iter().all(|h| match h {
                    HeaderMatch::IpProto(c) => c.test(u64::from(proto)),
                    _ => true,
                })
        })
}

/// Whether `[lo, hi]` holds a port that is not in `own` (sorted).
fn covers_other_port(lo: u16, hi: u16, own: &[u16]) -> bool {
    let inside = own.iter().filter(|&&p| lo <= p && p <= hi).count();
    (hi - lo) as usize + 1 > inside
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_ports() {
        assert!(!covers_other_port(80, 80, &[80, 443]));
        assert!(covers_other_port(80, 81, &[80, 443]));
        assert!(covers_other_port(0, u16::MAX, &[80]));
    }
}
