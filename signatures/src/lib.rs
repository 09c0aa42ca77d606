//! Suricata-compatible rule language and matching.
//!
//! `parse` splits rule text into header and options, `sig` compiles a rule into match lists
//! per inspection buffer, `prefilter` holds the Hyperscan databases of fast patterns, and
//! `engine` runs a loaded rule set over packets and application-layer transactions.

pub mod address;
pub mod buffer;
pub mod cache;
pub mod classification;
pub mod content;
pub mod engine;
pub mod groups;
pub mod inspect;
pub mod iponly;
pub mod keywords;
pub mod parse;
pub mod prefilter;
pub mod reference;
pub mod sig;
pub mod threshold;

pub use engine::{Detector, FlowVars, Hit, LoadReport, RuleSet, RuleSetConfig};

/// What a rule set contributes to a run; the daemon reports it in its summary and stats.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RuleSetSummary {
    pub loaded: usize,
    pub skipped: usize,
}
