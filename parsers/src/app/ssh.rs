//! Placeholder until the ssh parser lands.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SshHandshake {}
