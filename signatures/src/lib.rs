//! Suricata-compatible rule language and matching.
//!
//! The foundation only fixes this crate's place in the workspace; the rule parser, the Hyperscan
//! prefilter and the evaluator land with the signatures issue. Until then the daemon runs with no
//! rules and says so in its summary.

/// What a rule set contributes to a run; the daemon reports it in its summary and stats.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RuleSetSummary {
    pub loaded: usize,
    pub skipped: usize,
}
