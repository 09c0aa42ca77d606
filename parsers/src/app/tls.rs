//! Placeholder until the tls parser lands.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsHandshake {}
