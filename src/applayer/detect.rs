//! Protocol detection by content: every enabled protocol's probe looks at the first bytes of
//! each direction, the protocol registered for the server port first. The port only orders the
//! probes; a protocol on another port is found all the same, and a mismatch is reported.

use vigil_parsers::app::{dns, http, ssh, tls, AppProto, Direction, Probe};

use super::EnabledProtocols;

/// Bytes of one direction held while probes need more: enough for any handshake opening, small
/// enough that undecided flows cost little.
const MAX_HELD: usize = 4096;

/// The protocol registered for a server port, for ordering probes and spotting mismatches.
pub fn expected_proto_for_port(tcp: bool, port: u16) -> Option<AppProto> {
    match (tcp, port) {
        (true, 80 | 8080) => Some(AppProto::Http),
        (true, 443) => Some(AppProto::Tls),
        (true, 22) => Some(AppProto::Ssh),
        (true, 53) | (false, 53 | 5353) => Some(AppProto::Dns),
        _ => None,
    }
}

/// The result of probing one piece of data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirDetect {
    /// Undecided: more data is needed (or the other direction may still decide).
    Pending,
    Found(AppProto),
    /// Both directions are known not to be any enabled protocol.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum DirState {
    #[default]
    Probing,
    /// No probe matched this direction.
    Failed,
}

#[derive(Debug, Default)]
pub struct Detection {
    found: Option<AppProto>,
    dirs: [DirState; 2],
    /// Data of each direction kept until the protocol is known, so the parser sees it all.
    held: [Vec<u8>; 2],
    /// The last probed data was appended to `held` (the parser gets it from there).
    last_held: [bool; 2],
    /// The direction whose data named the protocol.
    found_in: Option<Direction>,
    /// The other direction's first data was checked against the protocol found.
    other_checked: bool,
}

fn idx(dir: Direction) -> usize {
    match dir {
        Direction::ToServer => 0,
        Direction::ToClient => 1,
    }
}

const ORDER: [AppProto; 4] = [AppProto::Http, AppProto::Tls, AppProto::Ssh, AppProto::Dns];

fn probe_one(proto: AppProto, tcp: bool, dir: Direction, data: &[u8]) -> Probe {
    match (proto, tcp) {
        (AppProto::Http, true) => http::probe(dir, data),
        (AppProto::Tls, true) => tls::probe(dir, data),
        (AppProto::Ssh, true) => ssh::probe(dir, data),
        (AppProto::Dns, true) => dns::probe_tcp(dir, data),
        (AppProto::Dns, false) => dns::probe_udp(dir, data),
        _ => Probe::NoMatch,
    }
}

impl Detection {
    /// Settled: found, or failed both ways. Further data needs no probing.
    pub fn is_settled(&self) -> bool {
        self.found.is_some() || self.dirs.iter().all(|d| *d == DirState::Failed)
    }

    /// The flow's `app_proto` as it stands.
    pub fn final_proto(&self) -> AppProto {
        match self.found {
            Some(p) => p,
            None if self.dirs.contains(&DirState::Failed) => AppProto::Failed,
            None => AppProto::Unknown,
        }
    }

    /// Probes the next in-order data of `dir`.
    pub fn probe(
        &mut self,
        enabled: &EnabledProtocols,
        tcp: bool,
        server_port: u16,
        dir: Direction,
        data: &[u8],
    ) -> DirDetect {
        let d = idx(dir);
        self.last_held[d] = false;
        if let Some(p) = self.found {
            return DirDetect::Found(p);
        }
        if self.dirs[d] == DirState::Failed {
            // Kept in case the other direction names the protocol.
            if tcp {
                self.hold(d, data);
            }
            return DirDetect::Pending;
        }
        // TCP data is probed as a stream (held bytes plus the new ones); UDP per datagram.
        let appended = tcp && !self.held[d].is_empty();
        if appended {
            self.hold(d, data);
        }
        let bytes: &[u8] = if appended { &self.held[d] } else { data };
        let expected = expected_proto_for_port(tcp, server_port).filter(|p| enabled.is_enabled(*p));
        let candidates = expected.into_iter().chain(
            ORDER
                .into_iter()
                .filter(|p| Some(*p) != expected && enabled.is_enabled(*p)),
        );
        let mut need_more = false;
        for proto in candidates {
            match probe_one(proto, tcp, dir, bytes) {
                Probe::Match => {
                    self.found = Some(proto);
                    self.found_in = Some(dir);
                    return DirDetect::Found(proto);
                }
                Probe::NeedMore => need_more = true,
                Probe::NoMatch => {}
            }
        }
        if need_more && tcp && bytes.len() < MAX_HELD {
            if !appended {
                self.hold(d, data);
            }
            return DirDetect::Pending;
        }
        self.dirs[d] = DirState::Failed;
        if tcp && !appended {
            self.hold(d, data);
        }
        if self.is_settled() {
            self.held = Default::default();
            return DirDetect::Failed;
        }
        DirDetect::Pending
    }

    fn hold(&mut self, d: usize, data: &[u8]) {
        let room = MAX_HELD.saturating_sub(self.held[d].len());
        self.held[d].extend_from_slice(&data[..data.len().min(room)]);
        self.last_held[d] = true;
    }

    /// Whether the data just probed in `dir` is part of what `take_held` returns.
    pub fn fed_from_held(&self, dir: Direction) -> bool {
        self.last_held[idx(dir)]
    }

    /// The held data of both directions (requests first), leaving nothing held.
    pub fn take_held(&mut self) -> [(Direction, Vec<u8>); 2] {
        let [ts, tc] = std::mem::take(&mut self.held);
        [(Direction::ToServer, ts), (Direction::ToClient, tc)]
    }

    /// The first data of the direction that did not name the protocol: if it is clearly another
    /// protocol (an HTTP request answered by an SSH banner), returns that protocol, once.
    pub fn other_direction_mismatch(
        &mut self,
        enabled: &EnabledProtocols,
        tcp: bool,
        dir: Direction,
        data: &[u8],
    ) -> Option<AppProto> {
        let found = self.found?;
        if self.other_checked || self.found_in == Some(dir) || data.is_empty() {
            return None;
        }
        self.other_checked = true;
        ORDER
            .into_iter()
            .filter(|p| *p != found && enabled.is_enabled(*p))
            .find(|p| probe_one(*p, tcp, dir, data) == Probe::Match)
    }

    /// Data of `dir` was lost before detection finished: held bytes no longer lead up to what
    /// comes next, so they are dropped and probing goes on from the new data.
    pub fn gap(&mut self, dir: Direction) {
        self.held[idx(dir)] = Vec::new();
    }
}
