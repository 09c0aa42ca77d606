//! What to do about an alert: the rule's own action (`reject*`, `drop`) and the operator's
//! policies from `[[response.policy]]`, decided in the worker (alerts are rare; a decision is a
//! few comparisons) so only alerts that call for an action cross to the responder.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use vigil_signatures::sig::{Action, Signature};

/// Which ends of an alert (its `src_ip`/`dest_ip`) an action applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ends {
    #[default]
    None,
    Src,
    Dst,
    Both,
}

impl Ends {
    pub fn src(self) -> bool {
        matches!(self, Ends::Src | Ends::Both)
    }

    pub fn dst(self) -> bool {
        matches!(self, Ends::Dst | Ends::Both)
    }

    fn of(src: bool, dst: bool) -> Ends {
        match (src, dst) {
            (false, false) => Ends::None,
            (true, false) => Ends::Src,
            (false, true) => Ends::Dst,
            (true, true) => Ends::Both,
        }
    }

    pub fn union(self, other: Ends) -> Ends {
        Ends::of(self.src() || other.src(), self.dst() || other.dst())
    }

    pub fn name(self) -> &'static str {
        match self {
            Ends::None => "none",
            Ends::Src => "src",
            Ends::Dst => "dst",
            Ends::Both => "both",
        }
    }
}

/// A duration written as `90s`, `15m`, `1h`, `2d` (or a bare number of seconds) in the config
/// and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{s:?} is not a duration (e.g. 90s, 15m, 1h, 2d)"))?;
        let secs = match unit {
            "" | "s" => n,
            "m" => n.saturating_mul(60),
            "h" => n.saturating_mul(3600),
            "d" => n.saturating_mul(86_400),
            _ => return Err(format!("{s:?}: unknown unit {unit:?} (s, m, h, d)")),
        };
        Ok(HumanDuration(Duration::from_secs(secs)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        match secs {
            0 => write!(f, "0s"),
            s if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            s if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            s if s % 60 == 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(n) => Ok(HumanDuration(Duration::from_secs(n))),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An address or a CIDR network (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Network {
    pub fn host(addr: IpAddr) -> Network {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Network { addr, prefix }
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.addr, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not an address or network (e.g. 10.0.0.0/8, 2001:db8::1)");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Network { addr, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Network {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The rule actions a policy can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    Alert,
    Drop,
    Reject,
    Rejectsrc,
    Rejectdst,
    Rejectboth,
}

impl RuleAction {
    fn matches(self, action: Action) -> bool {
        matches!(
            (self, action),
            (RuleAction::Alert, Action::Alert)
                | (RuleAction::Drop, Action::Drop)
                | (RuleAction::Reject, Action::Reject)
                | (RuleAction::Rejectsrc, Action::RejectSrc)
                | (RuleAction::Rejectdst, Action::RejectDst)
                | (RuleAction::Rejectboth, Action::RejectBoth)
        )
    }
}

/// One `[[response.policy]]`: every condition given must hold; then its actions apply.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// A name for logs and `response` events.
    #[serde(default)]
    pub name: String,
    /// Signature ids (any of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sids: Vec<u32>,
    /// Generator id; with `sids` it tells anomaly-model alerts from rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classtype: Option<String>,
    /// The alert's `category` text (the classtype's description, or a model's "Anomaly").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Severity 1 (highest) up to this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_severity: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<RuleAction>,
    /// Reset the TCP connection toward these ends.
    #[serde(default)]
    pub reset: Ends,
    /// Block these ends' addresses in the firewall.
    #[serde(default)]
    pub block: Ends,
    /// How long a block lasts.
    #[serde(default = "default_block_for", rename = "for")]
    pub block_for: HumanDuration,
}

fn default_block_for() -> HumanDuration {
    HumanDuration(Duration::from_secs(3600))
}

impl PolicyRule {
    fn matches(&self, alert: &AlertFacts) -> bool {
        (self.sids.is_empty() || self.sids.contains(&alert.sid))
            && self.gid.is_none_or(|g| g == alert.gid)
            && self
                .classtype
                .as_deref()
                .is_none_or(|c| alert.classtype == Some(c))
            && self
                .category
                .as_deref()
                .is_none_or(|c| c.eq_ignore_ascii_case(alert.category))
            && self.max_severity.is_none_or(|s| alert.severity <= s)
            && self.action.is_none_or(|a| a.matches(alert.action))
    }
}

/// What a decision looks at; built from a rule's signature or an anomaly model's alert.
#[derive(Debug, Clone, Copy)]
pub struct AlertFacts<'a> {
    pub gid: u32,
    pub sid: u32,
    pub classtype: Option<&'a str>,
    pub category: &'a str,
    pub severity: u8,
    pub action: Action,
}

impl<'a> AlertFacts<'a> {
    pub fn of(sig: &'a Signature) -> AlertFacts<'a> {
        AlertFacts {
            gid: sig.gid,
            sid: sig.sid,
            classtype: sig.classtype.as_deref(),
            category: &sig.category,
            severity: sig.priority,
            action: sig.action,
        }
    }
}

/// Why an action is wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The rule's own action (`reject`, `drop`, …).
    RuleAction(&'static str),
    /// A `[[response.policy]]`, by its name (or its position when unnamed).
    Policy(String),
    /// `vigil block`/`unblock` on the control socket.
    Operator,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::RuleAction(a) => write!(f, "rule action {a}"),
            Reason::Policy(name) => write!(f, "policy {name}"),
            Reason::Operator => write!(f, "operator"),
        }
    }
}

/// The actions one alert calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub reset: Ends,
    pub block: Ends,
    pub block_for: Duration,
    pub reasons: Vec<Reason>,
}

/// The rule-action and policy part of `[response]`, shared by the workers.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub rules: Vec<PolicyRule>,
    /// How long a `drop` rule blocks the alert's source (zero: only reset).
    pub drop_block_for: Duration,
}

/// The policy in force, replaced by a reload (SIGHUP) while workers use it.
pub type SharedPolicy = crate::published::Published<Policy>;
/// One reader's copy of the policy: an atomic load per alert, the lock only after a reload.
pub type PolicyView = crate::published::Reader<Policy>;

impl Policy {
    /// Rule actions on a passive sensor: `reject`/`rejectsrc` reset the alert's source (the
    /// sender of the matching packet, as Suricata), `rejectdst` its destination, `rejectboth`
    /// both; `drop` cannot drop a mirrored packet, so it resets both ends and blocks the
    /// source. Then the first matching policy adds its actions.
    pub fn decide(&self, alert: &AlertFacts) -> Option<Decision> {
        let (reset, block) = match alert.action {
            Action::Alert | Action::Pass => (Ends::None, Ends::None),
            Action::Reject | Action::RejectSrc => (Ends::Src, Ends::None),
            Action::RejectDst => (Ends::Dst, Ends::None),
            Action::RejectBoth => (Ends::Both, Ends::None),
            Action::Drop if self.drop_block_for.is_zero() => (Ends::Both, Ends::None),
            Action::Drop => (Ends::Both, Ends::Src),
        };
        let mut decision = Decision {
            reset,
            block,
            block_for: self.drop_block_for,
            reasons: Vec::new(),
        };
        if reset != Ends::None || block != Ends::None {
            decision
                .reasons
                .push(Reason::RuleAction(alert.action.keyword()));
        }
        if let Some((i, rule)) = self
            .rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(alert))
        {
            decision.reset = decision.reset.union(rule.reset);
            if rule.block != Ends::None {
                decision.block = decision.block.union(rule.block);
                decision.block_for = decision.block_for.max(rule.block_for.0);
            }
            let name = if rule.name.is_empty() {
                format!("#{}", i + 1)
            } else {
                rule.name.clone()
            };
            decision.reasons.push(Reason::Policy(name));
        }
        (decision.reset != Ends::None || decision.block != Ends::None).then_some(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(action: Action, classtype: Option<&'static str>, severity: u8) -> AlertFacts<'static> {
        AlertFacts {
            gid: 1,
            sid: 2000,
            classtype,
            category: "A Network Trojan was detected",
            severity,
            action,
        }
    }

    #[test]
    fn a_view_takes_the_replaced_policy_at_its_next_alert() {
        let shared = SharedPolicy::new(Policy {
            rules: Vec::new(),
            drop_block_for: Duration::ZERO,
        });
        let mut view = shared.reader();
        let alert = facts(Action::Alert, Some("trojan-activity"), 1);
        assert!(view.current().decide(&alert).is_none());
        let rule: PolicyRule = toml::from_str(
            "name = \"trojans\"\nclasstype = \"trojan-activity\"\nblock = \"src\"\n",
        )
        .unwrap();
        shared.replace(Policy {
            rules: vec![rule],
            drop_block_for: Duration::ZERO,
        });
        let decision = view
            .current()
            .decide(&alert)
            .expect("the new policy decides");
        assert_eq!(decision.block, Ends::Src);
    }

    #[test]
    fn durations_read_and_print_with_units() {
        for (text, secs) in [
            ("90s", 90),
            ("15m", 900),
            ("1h", 3600),
            ("2d", 172_800),
            ("7", 7),
        ] {
            assert_eq!(
                text.parse::<HumanDuration>().unwrap().0.as_secs(),
                secs,
                "{text}"
            );
        }
        assert!("1w"
            .parse::<HumanDuration>()
            .unwrap_err()
            .contains("unknown unit"));
        assert!("h".parse::<HumanDuration>().is_err());
        assert_eq!(HumanDuration(Duration::from_secs(5400)).to_string(), "90m");
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let net: Network = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(!net.contains("::ffff:10.1.0.1".parse().unwrap()));
        let v6: Network = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::9".parse().unwrap()));
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let host: Network = "192.0.2.7".parse().unwrap();
        assert_eq!(host.prefix, 32);
        assert!(!host.contains("192.0.2.8".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Network>().is_err());
        assert!("ten".parse::<Network>().is_err());
    }

    #[test]
    fn rule_actions_follow_suricata_on_a_passive_sensor() {
        let policy = Policy {
            rules: Vec::new(),
            drop_block_for: Duration::from_secs(600),
        };
        assert_eq!(policy.decide(&facts(Action::Alert, None, 1)), None);
        let reject = policy.decide(&facts(Action::Reject, None, 3)).unwrap();
        assert_eq!((reject.reset, reject.block), (Ends::Src, Ends::None));
        let dst = policy.decide(&facts(Action::RejectDst, None, 3)).unwrap();
        assert_eq!(dst.reset, Ends::Dst);
        let both = policy.decide(&facts(Action::RejectBoth, None, 3)).unwrap();
        assert_eq!(both.reset, Ends::Both);
        let drop = policy.decide(&facts(Action::Drop, None, 3)).unwrap();
        assert_eq!((drop.reset, drop.block), (Ends::Both, Ends::Src));
        assert_eq!(drop.block_for, Duration::from_secs(600));
        assert_eq!(drop.reasons, vec![Reason::RuleAction("drop")]);
        let no_block = Policy::default();
        let drop = no_block.decide(&facts(Action::Drop, None, 3)).unwrap();
        assert_eq!(drop.block, Ends::None);
    }

    #[test]
    fn the_first_matching_policy_adds_its_actions() {
        let policy = Policy {
            rules: vec![
                PolicyRule {
                    name: "trojans".into(),
                    sids: Vec::new(),
                    gid: None,
                    classtype: Some("trojan-activity".into()),
                    category: None,
                    max_severity: Some(1),
                    action: None,
                    reset: Ends::None,
                    block: Ends::Src,
                    block_for: HumanDuration(Duration::from_secs(3600)),
                },
                PolicyRule {
                    name: String::new(),
                    sids: vec![2000],
                    gid: None,
                    classtype: None,
                    category: None,
                    max_severity: None,
                    action: None,
                    reset: Ends::Both,
                    block: Ends::None,
                    block_for: default_block_for(),
                },
            ],
            drop_block_for: Duration::ZERO,
        };
        let hit = policy
            .decide(&facts(Action::Alert, Some("trojan-activity"), 1))
            .unwrap();
        assert_eq!((hit.reset, hit.block), (Ends::None, Ends::Src));
        assert_eq!(hit.block_for, Duration::from_secs(3600));
        assert_eq!(hit.reasons, vec![Reason::Policy("trojans".into())]);
        // Severity 2 misses the first policy; the second matches by sid.
        let second = policy
            .decide(&facts(Action::Alert, Some("trojan-activity"), 2))
            .unwrap();
        assert_eq!((second.reset, second.block), (Ends::Both, Ends::None));
        assert_eq!(second.reasons, vec![Reason::Policy("#2".into())]);
        let mut other = facts(Action::Alert, Some("web-application-attack"), 1);
        other.sid = 1;
        assert_eq!(policy.decide(&other), None);
    }
}
