//! Placeholder until the http parser lands.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpTransaction {}
