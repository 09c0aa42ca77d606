//! Scoring the anomaly models against the generator's ground truth: per behaviour, how many
//! actors were found (recall) and how many of the model's alerts name a real actor of that
//! behaviour (precision).

use std::collections::BTreeMap;

use serde_json::Value;
use vigil_pcapgen::{ScenarioKind, ScenarioTruth};

/// The behaviour an anomaly alert (gid 9100) claims, by its signature id.
pub fn kind_of_sid(sid: u64) -> Option<ScenarioKind> {
    Some(match sid {
        1 => ScenarioKind::PortScan,
        2 => ScenarioKind::HostSweep,
        3 | 4 => ScenarioKind::DnsTunnel,
        5 => ScenarioKind::Beacon,
        6 | 7 => ScenarioKind::Exfil,
        8 | 9 => ScenarioKind::ProtocolMisuse,
        _ => return None,
    })
}

#[derive(Debug, Default, Clone)]
pub struct Score {
    pub actors: usize,
    pub found: usize,
    pub alerts: usize,
    pub true_alerts: usize,
}

impl Score {
    pub fn recall(&self) -> f64 {
        if self.actors == 0 {
            1.0
        } else {
            self.found as f64 / self.actors as f64
        }
    }

    pub fn precision(&self) -> f64 {
        if self.alerts == 0 {
            1.0
        } else {
            self.true_alerts as f64 / self.alerts as f64
        }
    }
}

/// The model alerts among `events`.
pub fn model_alerts(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["event_type"] == "alert" && e["alert"]["gid"] == 9100)
        .collect()
}

/// Scores per behaviour. An alert is true when its source is an actor of the behaviour it
/// names (actors are hosts of their own, never in the background).
pub fn score(truth: &[ScenarioTruth], events: &[Value]) -> BTreeMap<&'static str, Score> {
    let mut scores: BTreeMap<&'static str, Score> = BTreeMap::new();
    for kind in ScenarioKind::ALL {
        scores.insert(kind.name(), Score::default());
    }
    let alerts = model_alerts(events);
    for t in truth {
        let s = scores.entry(t.kind.name()).or_default();
        s.actors += 1;
        let found = alerts.iter().any(|a| {
            a["src_ip"] == t.actor.to_string()
                && a["alert"]["signature_id"]
                    .as_u64()
                    .and_then(kind_of_sid)
                    .is_some_and(|k| k == t.kind)
        });
        if found {
            s.found += 1;
        }
    }
    for a in alerts {
        let Some(kind) = a["alert"]["signature_id"].as_u64().and_then(kind_of_sid) else {
            continue;
        };
        let s = scores.entry(kind.name()).or_default();
        s.alerts += 1;
        if truth
            .iter()
            .any(|t| t.kind == kind && a["src_ip"] == t.actor.to_string())
        {
            s.true_alerts += 1;
        }
    }
    scores
}

/// A table of the scores, one line per behaviour.
pub fn table(scores: &BTreeMap<&'static str, Score>) -> String {
    let mut out = String::from("| behaviour | actors | found | recall | alerts | true | precision |\n|---|---|---|---|---|---|---|\n");
    for (kind, s) in scores {
        out.push_str(&format!(
            "| {kind} | {} | {} | {:.2} | {} | {} | {:.2} |\n",
            s.actors,
            s.found,
            s.recall(),
            s.alerts,
            s.true_alerts,
            s.precision()
        ));
    }
    out
}
