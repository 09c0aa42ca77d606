//! Vigil: the sensor daemon's library. `main.rs` is only the CLI edge.

pub mod anomaly;
pub mod applayer;
pub mod capture;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod flow;
pub mod memory;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod published;
pub mod replay;
pub mod response;
pub mod stats;
pub mod verify;
