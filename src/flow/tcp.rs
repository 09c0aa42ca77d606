//! TCP connection state as a passive observer sees it, from the flags of both directions.

use vigil_parsers::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};

/// States named as Suricata names them in `tcp.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcpState {
    #[default]
    None,
    SynSent,
    SynRecv,
    Established,
    FinWait1,
    FinWait2,
    TimeWait,
    CloseWait,
    LastAck,
    Closing,
    Closed,
}

impl TcpState {
    pub fn as_str(self) -> &'static str {
        match self {
            TcpState::None => "none",
            TcpState::SynSent => "syn_sent",
            TcpState::SynRecv => "syn_recv",
            TcpState::Established => "established",
            TcpState::FinWait1 => "fin_wait1",
            TcpState::FinWait2 => "fin_wait2",
            TcpState::TimeWait => "time_wait",
            TcpState::CloseWait => "close_wait",
            TcpState::LastAck => "last_ack",
            TcpState::Closing => "closing",
            TcpState::Closed => "closed",
        }
    }

    /// Past the handshake: data may flow (or has flowed) both ways.
    pub fn is_established(self) -> bool {
        !matches!(self, TcpState::None | TcpState::SynSent | TcpState::SynRecv)
    }

    /// Both sides sent FIN (or a RST): Suricata's flow state `closed` begins at LAST_ACK and
    /// TIME_WAIT, before the last ACK.
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            TcpState::Closed | TcpState::TimeWait | TcpState::LastAck
        )
    }

    /// Advances on one segment. `from_client` is the segment's direction relative to the flow's
    /// initiator. Without a handshake seen (mid-stream pick-up), ACKs both ways establish it.
    pub fn on_segment(self, flags: u8, from_client: bool, seen_both_ways: bool) -> TcpState {
        use TcpState::*;
        if flags & TCP_RST != 0 {
            return Closed;
        }
        let syn = flags & TCP_SYN != 0;
        let ack = flags & TCP_ACK != 0;
        let fin = flags & TCP_FIN != 0;
        match self {
            None if syn && !ack && from_client => SynSent,
            None if syn && ack && !from_client => SynRecv,
            None if ack && seen_both_ways => Established,
            None => None,
            SynSent if syn && ack && !from_client => SynRecv,
            SynSent => SynSent,
            SynRecv if ack && !syn && from_client => {
                if fin {
                    CloseWait
                } else {
                    Established
                }
            }
            SynRecv => SynRecv,
            // States are named from the server's side, as Suricata names them: a client's FIN
            // puts the server in CLOSE_WAIT, a server's FIN in FIN_WAIT1.
            Established if fin && from_client => CloseWait,
            Established if fin => FinWait1,
            Established => Established,
            // The client closed first: the server's FIN, then the client's last ACK.
            CloseWait if fin && !from_client => LastAck,
            CloseWait => CloseWait,
            LastAck if ack && from_client => Closed,
            LastAck => LastAck,
            // The server closed first.
            // A FIN that also acknowledges the server's skips FIN_WAIT2; without, both closed
            // at once.
            FinWait1 if fin && ack && from_client => TimeWait,
            FinWait1 if fin && from_client => Closing,
            FinWait1 if ack && from_client => FinWait2,
            FinWait1 => FinWait1,
            FinWait2 if fin && from_client => TimeWait,
            FinWait2 => FinWait2,
            Closing if ack && !from_client => TimeWait,
            Closing => Closing,
            TimeWait if ack && !from_client => Closed,
            TimeWait => TimeWait,
            Closed => Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_parsers::TCP_PSH;

    #[test]
    fn full_session_client_closes() {
        let steps = [
            (TCP_SYN, true, TcpState::SynSent),
            (TCP_SYN | TCP_ACK, false, TcpState::SynRecv),
            (TCP_ACK, true, TcpState::Established),
            (TCP_PSH | TCP_ACK, true, TcpState::Established),
            (TCP_FIN | TCP_ACK, true, TcpState::CloseWait),
            (TCP_ACK, false, TcpState::CloseWait),
            (TCP_FIN | TCP_ACK, false, TcpState::LastAck),
            (TCP_ACK, true, TcpState::Closed),
        ];
        let mut s = TcpState::None;
        for (flags, from_client, want) in steps {
            s = s.on_segment(flags, from_client, true);
            assert_eq!(s, want);
        }
    }

    #[test]
    fn server_closes_first_and_reset() {
        let mut s = TcpState::Established;
        s = s.on_segment(TCP_FIN | TCP_ACK, false, true);
        assert_eq!(s, TcpState::FinWait1);
        s = s.on_segment(TCP_ACK, true, true);
        assert_eq!(s, TcpState::FinWait2);
        s = s.on_segment(TCP_FIN | TCP_ACK, true, true);
        assert_eq!(s, TcpState::TimeWait);
        s = s.on_segment(TCP_ACK, false, true);
        assert_eq!(s, TcpState::Closed);
        // The client's FIN acknowledging the server's: straight to TIME_WAIT.
        let s = TcpState::FinWait1.on_segment(TCP_FIN | TCP_ACK, true, true);
        assert_eq!(s, TcpState::TimeWait);
        assert_eq!(
            TcpState::FinWait1.on_segment(TCP_FIN, true, true),
            TcpState::Closing
        );
        assert_eq!(
            TcpState::SynSent.on_segment(TCP_RST, false, true),
            TcpState::Closed
        );
    }

    #[test]
    fn midstream_pickup_needs_both_directions() {
        assert_eq!(
            TcpState::None.on_segment(TCP_ACK, true, false),
            TcpState::None
        );
        assert_eq!(
            TcpState::None.on_segment(TCP_ACK, false, true),
            TcpState::Established
        );
    }
}
