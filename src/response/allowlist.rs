//! Networks active response never acts on: the operator's list, and by default the sensor's
//! own addresses, its default gateways and the hosts its events go to (the SOC uplink).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};

use super::policy::Network;

#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    /// Each network with why it is there, for the refusal's message.
    entries: Vec<(Network, String)>,
}

impl Allowlist {
    pub fn new(configured: &[Network]) -> Allowlist {
        Allowlist {
            entries: configured
                .iter()
                .map(|n| (*n, "response.allowlist".to_string()))
                .collect(),
        }
    }

    pub fn add(&mut self, net: Network, why: &str) {
        if !self.entries.iter().any(|(n, _)| *n == net) {
            self.entries.push((net, why.to_string()));
        }
    }

    /// Why `addr` is protected, if it is.
    pub fn check(&self, addr: IpAddr) -> Option<&str> {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        self.entries
            .iter()
            .find(|(n, _)| n.contains(addr))
            .map(|(_, why)| why.as_str())
    }

    pub fn entries(&self) -> impl Iterator<Item = &(Network, String)> {
        self.entries.iter()
    }

    /// Adds every address of this host's interfaces (in the sensor's network namespace).
    pub fn add_own_addresses(&mut self) {
        match nix::ifaddrs::getifaddrs() {
            Ok(addrs) => {
                for ifa in addrs {
                    let Some(addr) = ifa.address else { continue };
                    let ip = if let Some(v4) = addr.as_sockaddr_in() {
                        IpAddr::V4(v4.ip())
                    } else if let Some(v6) = addr.as_sockaddr_in6() {
                        IpAddr::V6(v6.ip())
                    } else {
                        continue;
                    };
                    self.add(Network::host(ip), "own address");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list own addresses for the allowlist"),
        }
    }

    /// Adds the default gateways of the main routing tables.
    pub fn add_gateways(&mut self) {
        if let Ok(text) = std::fs::read_to_string("/proc/net/route") {
            for gw in ipv4_gateways(&text) {
                self.add(Network::host(IpAddr::V4(gw)), "default gateway");
            }
        }
        if let Ok(text) = std::fs::read_to_string("/proc/net/ipv6_route") {
            for gw in ipv6_gateways(&text) {
                self.add(Network::host(IpAddr::V6(gw)), "default gateway");
            }
        }
    }

    /// Adds the addresses `host` resolves to (an output's receiver).
    pub fn add_host(&mut self, host: &str, port: u16) {
        match (host, port).to_socket_addrs() {
            Ok(addrs) => {
                for a in addrs {
                    self.add(Network::host(a.ip()), "event receiver (SOC uplink)");
                }
            }
            Err(e) => {
                tracing::warn!(host, error = %e, "cannot resolve an output host for the allowlist")
            }
        }
    }
}

/// Gateways of default routes in `/proc/net/route` (hex, little-endian as the kernel's u32).
fn ipv4_gateways(text: &str) -> Vec<Ipv4Addr> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dest, gw, mask) = (f.get(1)?, f.get(2)?, f.get(7)?);
            if *dest != "00000000" || *mask != "00000000" {
                return None;
            }
            let gw = u32::from_str_radix(gw, 16).ok().filter(|g| *g != 0)?;
            Some(Ipv4Addr::from(gw.to_le_bytes()))
        })
        .collect()
}

/// Gateways of `::/0` routes in `/proc/net/ipv6_route`.
fn ipv6_gateways(text: &str) -> Vec<Ipv6Addr> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dest, plen, gw) = (f.first()?, f.get(1)?, f.get(4)?);
            if u128::from_str_radix(dest, 16).ok()? != 0 || *plen != "00" {
                return None;
            }
            let gw = u128::from_str_radix(gw, 16).ok().filter(|g| *g != 0)?;
            Some(Ipv6Addr::from(gw))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_gateways_are_read_from_the_routing_tables() {
        let route =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                     eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(ipv4_gateways(route), vec![Ipv4Addr::new(192, 168, 2, 1)]);
        let route6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n\
                      20010db8000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0\n";
        assert_eq!(
            ipv6_gateways(route6),
            vec!["fe80::1".parse::<Ipv6Addr>().unwrap()]
        );
    }

    #[test]
    fn protected_addresses_say_why() {
        let mut list = Allowlist::new(&["10.9.0.0/16".parse().unwrap()]);
        list.add(Network::host("192.0.2.1".parse().unwrap()), "own address");
        assert_eq!(
            list.check("10.9.3.4".parse().unwrap()),
            Some("response.allowlist")
        );
        assert_eq!(
            list.check("192.0.2.1".parse().unwrap()),
            Some("own address")
        );
        // An IPv4-mapped IPv6 address is the IPv4 host it maps.
        assert_eq!(
            list.check("::ffff:192.0.2.1".parse().unwrap()),
            Some("own address")
        );
        assert_eq!(list.check("192.0.2.2".parse().unwrap()), None);
    }

    #[test]
    fn own_addresses_include_loopback() {
        let mut list = Allowlist::default();
        list.add_own_addresses();
        assert!(list.check("127.0.0.1".parse().unwrap()).is_some());
    }
}
