//! Placeholder until the dns parser lands.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsMessage {}
