//! Active response: TCP resets and ICMP unreachables injected toward the hosts of an alerting
//! flow, firewall blocks in an nftables table Vigil owns, a webhook for remote firewalls, all
//! under a policy with an allowlist, a rate limit, expiry and dry-run. Off unless enabled.
//!
//! Workers decide per alert ([`tap`], [`policy`]); the responder thread ([`engine`]) acts and
//! logs every action and refusal as an EVE `response` event ([`event`]); the operator talks to
//! it over the control socket ([`control`]).

pub mod allowlist;
pub mod control;
pub mod engine;
pub mod event;
pub mod forge;
pub mod inject;
pub mod nft;
pub mod policy;
pub mod tap;
pub mod webhook;

pub use engine::{Mode, Responder, ResponderConfig, ResponseCounters};

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Firewall};

/// `[response]` with the command line's overrides, resolved into the responder's settings and
/// the policy the workers decide with. `capture_ifaces` is empty for replay.
pub fn settings(
    config: &Config,
    mode: Mode,
    inject_iface: Option<&str>,
    capture_ifaces: &[String],
    outputs: &[String],
) -> Result<(ResponderConfig, Arc<policy::SharedPolicy>), String> {
    let r = &config.response;
    let inject_iface = match (inject_iface, r.inject_iface.as_str(), capture_ifaces) {
        (Some(i), _, _) => Some(i.to_string()),
        (None, "", []) => None,
        (None, "", [only]) => Some(only.clone()),
        (None, "", _) => {
            return Err(
                "active response with several capture interfaces: set response.inject_iface \
                 (or --inject-iface) to the interface resets should leave through"
                    .into(),
            )
        }
        (None, configured, _) => Some(configured.to_string()),
    };
    let firewall = match r.firewall {
        Firewall::Nft => Some(nft::NftConfig {
            table: r.nft_table.clone(),
            ..nft::NftConfig::default()
        }),
        Firewall::None => None,
    };
    let path = |p: &std::path::Path| (!p.as_os_str().is_empty()).then(|| p.to_path_buf());
    let webhook = (!r.webhook.url.is_empty()).then(|| webhook::WebhookConfig {
        url: r.webhook.url.clone(),
        ca_file: path(&r.webhook.ca),
        cert: path(&r.webhook.cert),
        key: path(&r.webhook.key),
        bearer_token: (!r.webhook.bearer_token.is_empty()).then(|| r.webhook.bearer_token.clone()),
        timeout: Duration::from_secs(u64::from(r.webhook.timeout_secs.max(1))),
        ..webhook::WebhookConfig::default()
    });
    let sensor = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let live = live_settings(config, outputs);
    let responder = ResponderConfig {
        mode,
        inject_iface,
        icmp_unreachable: live.icmp_unreachable,
        max_actions_per_minute: live.max_actions_per_minute,
        allowlist: live.allowlist,
        firewall,
        webhook,
        state_file: path(&r.state_file),
        sensor,
    };
    Ok((responder, policy::SharedPolicy::new(policy(config))))
}

/// The policy the workers decide with.
pub fn policy(config: &Config) -> policy::Policy {
    policy::Policy {
        rules: config.response.policies.clone(),
        drop_block_for: config.response.drop_block_for.0,
    }
}

/// The responder's settings a reload applies while it runs.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    pub allowlist: allowlist::Allowlist,
    pub max_actions_per_minute: u32,
    pub icmp_unreachable: bool,
}

pub fn live_settings(config: &Config, outputs: &[String]) -> LiveSettings {
    let r = &config.response;
    let mut allowlist = allowlist::Allowlist::new(&r.allowlist);
    if r.allowlist_own {
        allowlist.add_own_addresses();
        allowlist.add_gateways();
        let urls = config.outputs.iter().map(|o| o.url.as_str());
        for url in urls.chain(outputs.iter().map(String::as_str)) {
            let Some((host, port)) = output_host(url) else {
                continue;
            };
            allowlist.add_host(&host, port);
        }
        if let Some((host, port)) = output_host(&r.webhook.url) {
            allowlist.add_host(&host, port);
        }
    }
    LiveSettings {
        allowlist,
        max_actions_per_minute: r.max_actions_per_minute,
        icmp_unreachable: r.icmp_unreachable,
    }
}

/// Host and port of an output or webhook URL.
fn output_host(url: &str) -> Option<(String, u16)> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?.trim_matches(['[', ']']).to_string();
    let port = parsed.port_or_known_default().unwrap_or(0);
    Some((host, port))
}
