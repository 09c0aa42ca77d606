//! Address and port sets of rule headers, with Suricata's variables, groups, negation and ranges.
//!
//! A set is resolved once at load time into sorted, disjoint inclusive ranges, so matching a
//! packet is a binary search and negation (`!$HOME_NET`, `[any,!10.0.0.0/8]`) is plain
//! set subtraction.

use std::collections::HashMap;
use std::net::IpAddr;

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SetError {
    #[error("unknown variable ${0}")]
    UnknownVar(String),
    #[error("variable ${0} refers to itself")]
    RecursiveVar(String),
    #[error("invalid address {0:?}")]
    BadAddress(String),
    #[error("invalid port {0:?}")]
    BadPort(String),
    #[error("unbalanced brackets in {0:?}")]
    Brackets(String),
    #[error("{0:?} matches nothing")]
    Empty(String),
}

/// Sorted, disjoint, inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Ranges<T: Copy + Ord>(Vec<(T, T)>);

impl<T: Copy + Ord + Bounded> Ranges<T> {
    fn full() -> Self {
        Ranges(vec![(T::MIN, T::MAX)])
    }

    fn normalize(mut v: Vec<(T, T)>) -> Self {
        v.sort_unstable();
        let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
        for (lo, hi) in v {
            match out.last_mut() {
                Some(last) if lo <= last.1 || last.1.succ() == Some(lo) => {
                    if hi > last.1 {
                        last.1 = hi;
                    }
                }
                _ => out.push((lo, hi)),
            }
        }
        Ranges(out)
    }

    fn union(&self, other: &Self) -> Self {
        Ranges::normalize(self.0.iter().chain(other.0.iter()).copied().collect())
    }

    fn subtract(&self, other: &Self) -> Self {
        let mut out = Vec::new();
        for &(lo, hi) in &self.0 {
            let mut cur = Some(lo);
            for &(olo, ohi) in &other.0 {
                let Some(c) = cur else { break };
                if ohi < c || olo > hi {
                    continue;
                }
                if olo > c {
                    out.push((c, olo.pred().unwrap_or(olo)));
                }
                cur = ohi.succ().filter(|&n| n <= hi);
            }
            if let Some(c) = cur {
                out.push((c, hi));
            }
        }
        Ranges(out)
    }

    fn contains(&self, v: T) -> bool {
        let i = self.0.partition_point(|&(lo, _)| lo <= v);
        i > 0 && self.0[i - 1].1 >= v
    }

    fn is_full(&self) -> bool {
        self.0.len() == 1 && self.0[0] == (T::MIN, T::MAX)
    }
}

trait Bounded: Sized {
    const MIN: Self;
    const MAX: Self;
    fn succ(self) -> Option<Self>;
    fn pred(self) -> Option<Self>;
}

macro_rules! bounded {
    ($t:ty) => {
        impl Bounded for $t {
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
            fn succ(self) -> Option<Self> {
                self.checked_add(1)
            }
            fn pred(self) -> Option<Self> {
                self.checked_sub(1)
            }
        }
    };
}
bounded!(u32);
bounded!(u128);
bounded!(u16);

/// A resolved address set: IPv4 and IPv6 ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressSet {
    v4: Ranges<u32>,
    v6: Ranges<u128>,
}

impl AddressSet {
    pub fn any() -> AddressSet {
        AddressSet {
            v4: Ranges::full(),
            v6: Ranges::full(),
        }
    }

    fn empty() -> AddressSet {
        AddressSet {
            v4: Ranges::default(),
            v6: Ranges::default(),
        }
    }

    pub fn is_any(&self) -> bool {
        self.v4.is_full() && self.v6.is_full()
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => self.v4.contains(u32::from(a)),
            // Suricata keeps v4 and v6 apart: a v4-mapped address is still matched as v6.
            IpAddr::V6(a) => self.v6.contains(u128::from(a)),
        }
    }

    /// The IPv4 ranges (inclusive), sorted and disjoint.
    pub fn v4_ranges(&self) -> &[(u32, u32)] {
        &self.v4.0
    }

    pub fn v6_ranges(&self) -> &[(u128, u128)] {
        &self.v6.0
    }

    /// How much of the address space the set covers, as a fraction: picks the more selective
    /// side of a rule for indexing.
    pub fn coverage(&self) -> f64 {
        let v4: f64 = self
            .v4
            .0
            .iter()
            .map(|&(lo, hi)| (hi - lo) as f64 + 1.0)
            .sum();
        let v6: f64 = self
            .v6
            .0
            .iter()
            .map(|&(lo, hi)| (hi - lo) as f64 + 1.0)
            .sum();
        v4 / 2f64.powi(32) + v6 / 2f64.powi(128)
    }

    fn union(&self, o: &AddressSet) -> AddressSet {
        AddressSet {
            v4: self.v4.union(&o.v4),
            v6: self.v6.union(&o.v6),
        }
    }

    fn subtract(&self, o: &AddressSet) -> AddressSet {
        AddressSet {
            v4: self.v4.subtract(&o.v4),
            v6: self.v6.subtract(&o.v6),
        }
    }

    fn is_empty(&self) -> bool {
        self.v4.0.is_empty() && self.v6.0.is_empty()
    }
}

/// A resolved port set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSet(Ranges<u16>);

impl PortSet {
    pub fn any() -> PortSet {
        PortSet(Ranges::full())
    }

    pub fn is_any(&self) -> bool {
        self.0.is_full()
    }

    pub fn contains(&self, port: u16) -> bool {
        self.0.contains(port)
    }

    /// The port ranges (inclusive), sorted and disjoint.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.0 .0
    }
}

/// Address and port variables (`vars.address-groups` / `vars.port-groups` in Suricata).
#[derive(Debug, Clone)]
pub struct Vars {
    pub addresses: HashMap<String, String>,
    pub ports: HashMap<String, String>,
}

impl Default for Vars {
    /// Suricata's default suricata.yaml groups, which ET Open is written against.
    fn default() -> Vars {
        let home = "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]";
        let mut addresses: HashMap<String, String> = [
            ("HOME_NET", home),
            ("EXTERNAL_NET", "!$HOME_NET"),
            ("AIM_SERVERS", "$EXTERNAL_NET"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for name in [
            "HTTP_SERVERS",
            "SMTP_SERVERS",
            "SQL_SERVERS",
            "DNS_SERVERS",
            "TELNET_SERVERS",
            "DC_SERVERS",
            "DNP3_SERVER",
            "DNP3_CLIENT",
            "MODBUS_CLIENT",
            "MODBUS_SERVER",
            "ENIP_CLIENT",
            "ENIP_SERVER",
        ] {
            addresses.insert(name.to_string(), "$HOME_NET".to_string());
        }
        let ports = [
            ("HTTP_PORTS", "80"),
            ("SHELLCODE_PORTS", "!80"),
            ("ORACLE_PORTS", "1521"),
            ("SSH_PORTS", "22"),
            ("DNP3_PORTS", "20000"),
            ("MODBUS_PORTS", "502"),
            ("FILE_DATA_PORTS", "[$HTTP_PORTS,110,143]"),
            ("FTP_PORTS", "21"),
            ("GENEVE_PORTS", "6081"),
            ("VXLAN_PORTS", "4789"),
            ("TEREDO_PORTS", "3544"),
            ("SIP_PORTS", "[5060,5061]"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Vars { addresses, ports }
    }
}

/// Splits a group body at top-level commas.
fn split_group(s: &str) -> Result<Vec<&str>, SetError> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth < 0 {
                    return Err(SetError::Brackets(s.to_string()));
                }
            }
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(SetError::Brackets(s.to_string()));
    }
    out.push(s[start..].trim());
    Ok(out)
}

impl Vars {
    pub fn address_set(&self, text: &str) -> Result<AddressSet, SetError> {
        let set = self.address_inner(text.trim(), 0)?;
        if set.is_empty() {
            return Err(SetError::Empty(text.to_string()));
        }
        Ok(set)
    }

    fn address_inner(&self, text: &str, depth: u32) -> Result<AddressSet, SetError> {
        if depth > 16 {
            return Err(SetError::RecursiveVar(text.to_string()));
        }
        if let Some(rest) = text.strip_prefix('!') {
            return Ok(AddressSet::any().subtract(&self.address_inner(rest.trim(), depth + 1)?));
        }
        if let Some(body) = text.strip_prefix('[') {
            let body = body
                .strip_suffix(']')
                .ok_or_else(|| SetError::Brackets(text.to_string()))?;
            let mut include = AddressSet::empty();
            let mut exclude = AddressSet::empty();
            let mut any_positive = false;
            for part in split_group(body)? {
                if part.is_empty() {
                    continue;
                }
                if let Some(neg) = part.strip_prefix('!') {
                    exclude = exclude.union(&self.address_inner(neg.trim(), depth + 1)?);
                } else {
                    any_positive = true;
                    include = include.union(&self.address_inner(part, depth + 1)?);
                }
            }
            // A group of only negations means "everything but these", as in Suricata.
            if !any_positive {
                include = AddressSet::any();
            }
            return Ok(include.subtract(&exclude));
        }
        if let Some(name) = text.strip_prefix('$') {
            let value = self
                .addresses
                .get(name)
                .ok_or_else(|| SetError::UnknownVar(name.to_string()))?;
            return self.address_inner(value.trim(), depth + 1);
        }
        if text.eq_ignore_ascii_case("any") {
            return Ok(AddressSet::any());
        }
        parse_address(text)
    }

    pub fn port_set(&self, text: &str) -> Result<PortSet, SetError> {
        let set = self.port_inner(text.trim(), 0)?;
        if set.0.is_empty() {
            return Err(SetError::Empty(text.to_string()));
        }
        Ok(PortSet(set))
    }

    fn port_inner(&self, text: &str, depth: u32) -> Result<Ranges<u16>, SetError> {
        if depth > 16 {
            return Err(SetError::RecursiveVar(text.to_string()));
        }
        if let Some(rest) = text.strip_prefix('!') {
            return Ok(Ranges::full().subtract(&self.port_inner(rest.trim(), depth + 1)?));
        }
        if let Some(body) = text.strip_prefix('[') {
            let body = body
                .strip_suffix(']')
                .ok_or_else(|| SetError::Brackets(text.to_string()))?;
            let mut include = Ranges::default();
            let mut exclude = Ranges::default();
            let mut any_positive = false;
            for part in split_group(body)? {
                if part.is_empty() {
                    continue;
                }
                if let Some(neg) = part.strip_prefix('!') {
                    exclude = exclude.union(&self.port_inner(neg.trim(), depth + 1)?);
                } else {
                    any_positive = true;
                    include = include.union(&self.port_inner(part, depth + 1)?);
                }
            }
            if !any_positive {
                include = Ranges::full();
            }
            return Ok(include.subtract(&exclude));
        }
        if let Some(name) = text.strip_prefix('$') {
            let value = self
                .ports
                .get(name)
                .ok_or_else(|| SetError::UnknownVar(name.to_string()))?;
            return self.port_inner(value.trim(), depth + 1);
        }
        if text.eq_ignore_ascii_case("any") {
            return Ok(Ranges::full());
        }
        let bad = || SetError::BadPort(text.to_string());
        let num = |s: &str| -> Result<u16, SetError> {
            let s = s.trim();
            s.parse::<u16>().map_err(|_| bad())
        };
        if let Some((lo, hi)) = text.split_once(':') {
            let lo = if lo.trim().is_empty() { 0 } else { num(lo)? };
            let hi = if hi.trim().is_empty() {
                u16::MAX
            } else {
                num(hi)?
            };
            if lo > hi {
                return Err(bad());
            }
            return Ok(Ranges(vec![(lo, hi)]));
        }
        let p = num(text)?;
        Ok(Ranges(vec![(p, p)]))
    }
}

fn parse_address(text: &str) -> Result<AddressSet, SetError> {
    let bad = || SetError::BadAddress(text.to_string());
    let mut set = AddressSet::empty();
    if let Some((lo, hi)) = text.split_once('-') {
        let lo: IpAddr = lo.trim().parse().map_err(|_| bad())?;
        let hi: IpAddr = hi.trim().parse().map_err(|_| bad())?;
        match (lo, hi) {
            (IpAddr::V4(a), IpAddr::V4(b)) if a <= b => {
                set.v4 = Ranges(vec![(u32::from(a), u32::from(b))])
            }
            (IpAddr::V6(a), IpAddr::V6(b)) if a <= b => {
                set.v6 = Ranges(vec![(u128::from(a), u128::from(b))])
            }
            _ => return Err(bad()),
        }
        return Ok(set);
    }
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a.trim(), Some(p.trim())),
        None => (text, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| bad())?;
    match ip {
        IpAddr::V4(a) => {
            let bits = match prefix {
                None => 32,
                Some(p) => match p.parse::<u32>() {
                    Ok(n) if n <= 32 => n,
                    // Netmask form: 10.0.0.0/255.0.0.0.
                    _ => {
                        let m: std::net::Ipv4Addr = p.parse().map_err(|_| bad())?;
                        let m = u32::from(m);
                        if m.leading_ones() + m.trailing_zeros() != 32 {
                            return Err(bad());
                        }
                        m.leading_ones()
                    }
                },
            };
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            let lo = u32::from(a) & mask;
            set.v4 = Ranges(vec![(lo, lo | !mask)]);
        }
        IpAddr::V6(a) => {
            let bits = match prefix {
                None => 128,
                Some(p) => p
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| n <= 128)
                    .ok_or_else(bad)?,
            };
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            let lo = u128::from(a) & mask;
            set.v6 = Ranges(vec![(lo, lo | !mask)]);
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn home_and_external_net_are_complements() {
        let vars = Vars::default();
        let home = vars.address_set("$HOME_NET").unwrap();
        let ext = vars.address_set("$EXTERNAL_NET").unwrap();
        for a in [
            "10.1.2.3",
            "192.168.0.1",
            "172.31.255.255",
            "8.8.8.8",
            "172.32.0.1",
        ] {
            assert_ne!(home.contains(ip(a)), ext.contains(ip(a)), "{a}");
        }
        assert!(home.contains(ip("10.0.0.0")));
        assert!(!home.contains(ip("11.0.0.0")));
        assert!(ext.contains(ip("2001:db8::1")));
    }

    #[test]
    fn groups_negation_ranges() {
        let vars = Vars::default();
        let s = vars
            .address_set("[10.0.0.0/8,!10.1.0.0/16,192.0.2.5-192.0.2.9]")
            .unwrap();
        assert!(s.contains(ip("10.2.0.1")));
        assert!(!s.contains(ip("10.1.3.4")));
        assert!(s.contains(ip("192.0.2.9")));
        assert!(!s.contains(ip("192.0.2.10")));
        let only_neg = vars.address_set("[!1.2.3.4]").unwrap();
        assert!(only_neg.contains(ip("1.2.3.5")) && !only_neg.contains(ip("1.2.3.4")));
        assert!(matches!(
            vars.address_set("$NOPE"),
            Err(SetError::UnknownVar(_))
        ));
        assert!(vars.address_set("[1.2.3.4").is_err());
        assert!(matches!(vars.address_set("!any"), Err(SetError::Empty(_))));
    }

    #[test]
    fn ports() {
        let vars = Vars::default();
        let p = vars.port_set("[1024:,!8080,$HTTP_PORTS]").unwrap();
        assert!(p.contains(80) && p.contains(1024) && p.contains(65535));
        assert!(!p.contains(8080) && !p.contains(443));
        let s = vars.port_set("$SHELLCODE_PORTS").unwrap();
        assert!(!s.contains(80) && s.contains(81));
        assert!(vars.port_set(":1023").unwrap().contains(0));
        assert!(vars.port_set("70000").is_err());
        assert!(vars.port_set("any").unwrap().is_any());
    }
}
