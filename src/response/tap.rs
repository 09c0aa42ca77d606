//! The worker's side of active response: after a packet alerted, decide per alert (rule action
//! and policy) and hand the alerts that call for an action to the responder, with what a reset
//! needs of the triggering packet. Nothing here runs for packets that did not alert.

use std::time::Instant;

use vigil_parsers::{DecodedPacket, L4};

use super::engine::{Request, RequestSender, TriggerPacket};
use super::event::AlertInfo;
use super::forge::{L2Header, TcpSeen};
use super::policy::{AlertFacts, PolicyView};
use crate::output::eve::{AppEventKind, EveEvent};

/// Bytes of the triggering packet kept for an ICMP error's quote.
const QUOTE_BYTES: usize = 128;

pub struct ResponseTap {
    policy: PolicyView,
    requests: RequestSender,
}

/// The packet that made the alerts, as the worker holds it.
pub struct PacketView<'a> {
    pub pkt: &'a DecodedPacket,
    /// The frame as captured (from the link header on, or from the IP header for reassembled
    /// datagrams).
    pub bytes: &'a [u8],
}

impl ResponseTap {
    pub fn new(policy: PolicyView, requests: RequestSender) -> ResponseTap {
        ResponseTap { policy, requests }
    }

    /// Looks at the alerts among `events` (those the packet just produced).
    pub fn on_alerts(&mut self, events: &[EveEvent], packet: Option<PacketView>) {
        for ev in events {
            let EveEvent::App(app) = ev else { continue };
            let AppEventKind::Alert(alert) = &app.kind else {
                continue;
            };
            let sig = alert.rules.sig(alert.sig);
            let Some(decision) = self.policy.current().decide(&AlertFacts::of(sig)) else {
                continue;
            };
            self.requests.send(Request {
                alerted: Instant::now(),
                flow_id: app.flow_id,
                alert: AlertInfo {
                    gid: sig.gid,
                    signature_id: sig.sid,
                    rev: sig.rev,
                    signature: sig.msg.clone(),
                    category: sig.category.clone(),
                    severity: sig.priority,
                    action: sig.action.keyword().to_string(),
                },
                decision,
                src: app.src,
                dst: app.dst,
                ports: app.ports,
                proto: app.proto,
                packet: packet.as_ref().and_then(trigger),
            });
        }
    }
}

/// An anomaly model's alert: the policy decides as for a rule (gid, sid, category "Anomaly",
/// severity); there is no packet to reset with, so only blocks can follow.
pub fn on_model_alert(
    policy: &mut PolicyView,
    requests: &RequestSender,
    alert: &crate::anomaly::ModelAlert,
) {
    let facts = AlertFacts {
        gid: crate::anomaly::GID,
        sid: alert.sid,
        classtype: None,
        category: "Anomaly",
        severity: alert.severity,
        action: vigil_signatures::sig::Action::Alert,
    };
    let Some(mut decision) = policy.current().decide(&facts) else {
        return;
    };
    // A finding about one host (a sweep) has no other end to act on.
    if alert.dst.is_none() {
        decision.block = match decision.block {
            super::policy::Ends::Dst => super::policy::Ends::None,
            super::policy::Ends::Both => super::policy::Ends::Src,
            other => other,
        };
        decision.reset = super::policy::Ends::None;
    }
    if decision.block == super::policy::Ends::None && decision.reset == super::policy::Ends::None {
        return;
    }
    requests.send(Request {
        alerted: Instant::now(),
        flow_id: alert.flow_id.unwrap_or(0),
        alert: AlertInfo {
            gid: crate::anomaly::GID,
            signature_id: alert.sid,
            rev: 1,
            signature: alert.signature.to_string(),
            category: "Anomaly".into(),
            severity: alert.severity,
            action: "alert".into(),
        },
        decision,
        src: alert.src,
        dst: alert.dst.unwrap_or(alert.src),
        ports: alert.ports,
        proto: alert.proto.unwrap_or(0),
        packet: None,
    });
}

fn trigger(view: &PacketView) -> Option<TriggerPacket> {
    let pkt = view.pkt;
    if pkt.kind != vigil_parsers::PacketKind::Ip {
        return None;
    }
    let l3 = pkt.l3.header_offset as usize;
    // A reply needs the link header as captured: not through tunnels or MPLS, whose outer
    // headers would have to be rebuilt too.
    let plain = pkt.tunnel.kind == vigil_parsers::TunnelKind::None && pkt.mpls_labels == 0;
    let l2 = if plain {
        L2Header::from_frame(view.bytes, l3)
    } else {
        None
    };
    let tcp = match pkt.l4 {
        L4::Tcp(t) => Some(TcpSeen {
            src: pkt.l3.src,
            dst: pkt.l3.dst,
            src_port: t.src_port,
            dst_port: t.dst_port,
            seq: t.seq,
            ack: t.ack,
            flags: t.flags,
            payload_len: pkt.payload_len,
        }),
        _ => None,
    };
    let ip_head = view
        .bytes
        .get(l3..)
        .map(|b| b[..b.len().min(QUOTE_BYTES)].to_vec())
        .unwrap_or_default();
    Some(TriggerPacket {
        l2,
        tcp,
        sender: pkt.l3.src,
        ip_head,
    })
}
