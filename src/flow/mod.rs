//! Per-worker flow tracking: keys, the table with its timeouts and memcap, TCP state.

pub mod key;
pub mod table;
pub mod tcp;

pub use key::{community_id_v1, dispatch_hash, CommunityTuple, FlowKey, KeySide};
pub use table::{
    FlowEnd, FlowRecord, FlowStats, FlowTable, FlowTableConfig, FlowTimeouts, Timeouts,
};
pub use tcp::TcpState;
