//! Protocol misuse: a known protocol on a port it does not belong to (HTTP on 31337, SSH on
//! 443), and traffic no parser recognised on the web ports (80, 443), where tunnels and
//! backdoors hide from port-based firewalls. Judged per flow once it ended, with the
//! application protocol content probing found.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use vigil_parsers::app::AppProto;

use super::table::{Limits, Table};
use super::{sid, ModelAlert};
use crate::flow::key::PROTO_TCP;
use crate::flow::FlowRecord;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MisuseConfig {
    pub enabled: bool,
    /// Ports each protocol is expected on; elsewhere it is "on an unusual port".
    pub http_ports: Vec<u16>,
    pub tls_ports: Vec<u16>,
    pub ssh_ports: Vec<u16>,
    pub dns_ports: Vec<u16>,
    /// Ports where only HTTP or TLS is expected.
    pub web_ports: Vec<u16>,
}

impl Default for MisuseConfig {
    fn default() -> Self {
        MisuseConfig {
            enabled: true,
            http_ports: vec![80, 81, 591, 3128, 8000, 8008, 8080, 8081, 8088, 8888],
            tls_ports: vec![
                443, 465, 563, 636, 853, 989, 990, 992, 993, 994, 995, 4443, 5061, 8443, 9443,
            ],
            ssh_ports: vec![22, 2222],
            dns_ports: vec![53, 5353],
            web_ports: vec![80, 443],
        }
    }
}

pub struct Misuse {
    cfg: MisuseConfig,
    /// (client, server, port): one alert per conversation and cooldown.
    seen: Table<(IpAddr, IpAddr, u16), ()>,
}

impl Misuse {
    pub fn new(cfg: MisuseConfig, limits: Limits) -> Misuse {
        Misuse {
            cfg,
            seen: Table::new(limits),
        }
    }

    /// Ports from a reload; what was seen so far is kept.
    pub fn reconfigure(&mut self, cfg: MisuseConfig, limits: Limits) {
        self.cfg = cfg;
        self.seen.set_limits(limits);
    }

    pub fn evicted(&self) -> u64 {
        self.seen.evicted()
    }

    pub fn flow(&mut self, f: &FlowRecord, out: &mut Vec<ModelAlert>) {
        let Some((sport, dport)) = f.ports else {
            return;
        };
        let (sid, signature, expected): (u32, &'static str, &[u16]) = match f.app_proto {
            AppProto::Http if !self.cfg.http_ports.contains(&dport) => (
                sid::UNUSUAL_PORT,
                "HTTP on an unusual port",
                &self.cfg.http_ports,
            ),
            AppProto::Tls if !self.cfg.tls_ports.contains(&dport) => (
                sid::UNUSUAL_PORT,
                "TLS on an unusual port",
                &self.cfg.tls_ports,
            ),
            AppProto::Ssh if !self.cfg.ssh_ports.contains(&dport) => (
                sid::UNUSUAL_PORT,
                "SSH on an unusual port",
                &self.cfg.ssh_ports,
            ),
            AppProto::Dns if !self.cfg.dns_ports.contains(&dport) => (
                sid::UNUSUAL_PORT,
                "DNS on an unusual port",
                &self.cfg.dns_ports,
            ),
            // SSH on 443 is named by the arm above; here: what no parser recognised.
            AppProto::Failed if f.proto == PROTO_TCP && self.cfg.web_ports.contains(&dport) => (
                sid::NOT_WEB_ON_WEB_PORT,
                "non-HTTP/TLS traffic on a web port",
                &self.cfg.web_ports,
            ),
            _ => return,
        };
        let key = (f.client_addr, f.server_addr, dport);
        self.seen.get(&key, f.last_ts_ns, || ());
        if !self.seen.may_alert(&key, f.last_ts_ns) {
            return;
        }
        let expected: Vec<String> = expected.iter().map(u16::to_string).collect();
        out.push(ModelAlert {
            ts_ns: f.last_ts_ns,
            sid,
            signature,
            model: "misuse",
            severity: 2,
            score: 1.0,
            src: f.client_addr,
            dst: Some(f.server_addr),
            ports: Some((sport, dport)),
            proto: Some(f.proto),
            flow_id: Some(f.flow_id),
            evidence: vec![
                ("app_proto", vec![f.app_proto.as_str().to_string()]),
                ("port", vec![dport.to_string()]),
                ("expected_ports", expected),
                ("bytes_toserver", vec![f.bytes_toserver.to_string()]),
                ("bytes_toclient", vec![f.bytes_toclient.to_string()]),
            ],
        });
    }
}
