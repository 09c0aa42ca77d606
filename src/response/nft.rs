//! Firewall blocks in an nftables table that Vigil creates and owns, driven through the `nft`
//! tool.
//!
//! The tool rather than netlink: it is what operators know and debug with (`nft list table inet
//! vigil` shows exactly what Vigil did), and a spawn costs a few milliseconds, well inside the
//! budget of a block. Every call is one `nft -f -` script, which nft applies as one atomic
//! transaction: either all of a batch of changes is in force or none is.
//!
//! The table is `inet <table>` (default `vigil`) with two sets of blocked addresses, `block4`
//! and `block6`, whose elements time out on their own, and three base chains (`input`,
//! `forward`, `output`, priority `filter - 10`, policy accept) that drop traffic from and to
//! those addresses. Vigil touches nothing outside its table.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The longest timeout put on an element: nft refuses larger ones ("value too large") past a
/// limit that depends on its version and the kernel's HZ; 2^32 ms (~49.7 days) is accepted
/// everywhere. Longer blocks are clamped to it.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(4_294_967);

const MAX_NAME: usize = 32;

/// The rules of each chain, in order. `ensure` flushes each chain and adds these again, so the
/// chains hold exactly these whatever was there before.
const RULES: &[(&str, &str)] = &[
    ("input", "ip saddr @block4 drop"),
    ("input", "ip6 saddr @block6 drop"),
    ("forward", "ip saddr @block4 drop"),
    ("forward", "ip6 saddr @block6 drop"),
    ("forward", "ip daddr @block4 drop"),
    ("forward", "ip6 daddr @block6 drop"),
    ("output", "ip daddr @block4 drop"),
    ("output", "ip6 daddr @block6 drop"),
];

const CHAINS: &[&str] = &["input", "forward", "output"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftConfig {
    /// The table's name (family `inet`): letters, digits, `_` and `-`, at most 32 characters.
    pub table: String,
    /// The `nft` program, looked up in `PATH` unless a path.
    pub nft: PathBuf,
    /// Run nft inside this network namespace (`ip netns exec NAME nft …`, so iproute2 is then
    /// needed): for the tests, and for a sensor that manages the firewall of another namespace
    /// than its own (a router's or a container host's). `None`: the sensor's own namespace.
    pub netns: Option<String>,
}

impl Default for NftConfig {
    fn default() -> Self {
        NftConfig {
            table: "vigil".to_string(),
            nft: PathBuf::from("nft"),
            netns: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error(
        "invalid {what} {name:?}: use letters, digits, '_' and '-', at most {MAX_NAME} characters"
    )]
    InvalidName { what: &'static str, name: String },
    #[error("{program} not found: the {package} package is needed for firewall blocks")]
    NotInstalled {
        program: String,
        package: &'static str,
    },
    #[error(
        "nft: permission denied: changing the firewall needs root or CAP_NET_ADMIN ({stderr})"
    )]
    Permission { stderr: String },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("nft {args} failed ({status}): {stderr}")]
    Failed {
        args: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("cannot parse the output of nft -j: {0}")]
    Parse(String),
}

/// One blocked address and the time left until its block lapses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftBlock {
    pub addr: IpAddr,
    /// Whole seconds, as nft reports them. `Duration::MAX` for an element without a timeout
    /// (one added by hand: Vigil always sets one).
    pub expires_in: Duration,
}

pub struct Nft {
    config: NftConfig,
}

impl Nft {
    pub fn new(config: NftConfig) -> Nft {
        Nft { config }
    }

    /// Creates the table, its sets and its chains, or brings an existing table back to the
    /// expected rules. Idempotent: the declarative `table … { … }` block merges with what is
    /// there (set elements, and so blocks, are kept across a daemon restart), and each chain is
    /// flushed and its rules added again in the same transaction, so rules are never doubled.
    pub fn ensure(&self) -> Result<(), NftError> {
        let t = self.table()?;
        let mut s = format!("table inet {t} {{\n");
        s.push_str("  set block4 { type ipv4_addr; flags timeout; }\n");
        s.push_str("  set block6 { type ipv6_addr; flags timeout; }\n");
        for chain in CHAINS {
            s.push_str(&format!(
                "  chain {chain} {{ type filter hook {chain} priority filter - 10; policy accept; }}\n"
            ));
        }
        s.push_str("}\n");
        for chain in CHAINS {
            s.push_str(&format!("flush chain inet {t} {chain}\n"));
        }
        for (chain, rule) in RULES {
            s.push_str(&format!("add rule inet {t} {chain} {rule}\n"));
        }
        self.script(&s)
    }

    /// Blocks each address for its duration (rounded up to whole seconds, at least 1 s, at most
    /// [`MAX_TIMEOUT`]). An address already blocked gets the new timeout, longer or shorter.
    /// An address listed twice gets its last duration. The table must exist ([`Nft::ensure`]).
    pub fn block(&self, entries: &[(IpAddr, Duration)]) -> Result<(), NftError> {
        let t = self.table()?;
        // Last entry wins, first-seen order kept so the script is deterministic.
        let mut order = Vec::new();
        let mut secs = HashMap::new();
        for &(addr, d) in entries {
            let addr = addr.to_canonical();
            if secs.insert(addr, timeout_secs(d)).is_none() {
                order.push(addr);
            }
        }
        let mut s = String::new();
        for (set, addrs) in by_set(&order) {
            let timed = join(addrs.iter().map(|a| format!("{a} timeout {}s", secs[a])));
            let plain = join(addrs.iter().map(|a| a.to_string()));
            // `add element` leaves the timeout of an element already in the set as it is, so
            // the element is added (a no-op if present), deleted, and added with the new
            // timeout: one transaction, no moment without the block.
            s.push_str(&format!("add element inet {t} {set} {{ {timed} }}\n"));
            s.push_str(&format!("delete element inet {t} {set} {{ {plain} }}\n"));
            s.push_str(&format!("add element inet {t} {set} {{ {timed} }}\n"));
        }
        if s.is_empty() {
            return Ok(());
        }
        self.script(&s)
    }

    /// Lifts the blocks of these addresses. An address that is not blocked is not an error.
    pub fn unblock(&self, addrs: &[IpAddr]) -> Result<(), NftError> {
        let t = self.table()?;
        let mut order: Vec<IpAddr> = Vec::new();
        for a in addrs {
            let a = a.to_canonical();
            if !order.contains(&a) {
                order.push(a);
            }
        }
        let mut s = String::new();
        for (set, addrs) in by_set(&order) {
            let plain = join(addrs.iter().map(|a| a.to_string()));
            // `delete element` fails on an absent element: adding it first (a no-op if present)
            // makes the delete always valid.
            s.push_str(&format!("add element inet {t} {set} {{ {plain} }}\n"));
            s.push_str(&format!("delete element inet {t} {set} {{ {plain} }}\n"));
        }
        if s.is_empty() {
            return Ok(());
        }
        self.script(&s)
    }

    /// The addresses blocked now, IPv4 first. No table (never ensured, or removed): empty.
    pub fn list(&self) -> Result<Vec<NftBlock>, NftError> {
        let t = self.table()?;
        let mut out = Vec::new();
        for set in ["block4", "block6"] {
            match self.run(&["-j", "list", "set", "inet", t, set], None) {
                Ok(json) => parse_set(&json, &mut out)?,
                // nft's own "no such table/set", not `ip netns exec`'s "Cannot open network
                // namespace …: No such file or directory".
                Err(NftError::Failed { stderr, .. })
                    if stderr
                        .lines()
                        .any(|l| l.starts_with("Error: No such file or directory")) =>
                {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Deletes the table, its sets and so every block. No table is not an error.
    pub fn remove_table(&self) -> Result<(), NftError> {
        let t = self.table()?;
        // Declaring the (empty) table first makes the delete valid when there is none.
        self.script(&format!("table inet {t} {{ }}\ndelete table inet {t}\n"))
    }

    fn table(&self) -> Result<&str, NftError> {
        check_name("nftables table name", &self.config.table)?;
        Ok(&self.config.table)
    }

    fn script(&self, script: &str) -> Result<(), NftError> {
        tracing::debug!(table = %self.config.table, "nft -f -:\n{script}");
        self.run(&["-f", "-"], Some(script)).map(drop)
    }

    /// Runs nft with these arguments (and this standard input); its standard output on success.
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, NftError> {
        let mut cmd = match &self.config.netns {
            Some(ns) => {
                check_name("network namespace name", ns)?;
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.config.nft);
                c
            }
            None => Command::new(&self.config.nft),
        };
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let nft_name = self.config.nft.display().to_string();
        let mut child = cmd.spawn().map_err(|e| {
            let (program, package) = match &self.config.netns {
                Some(_) => ("ip".to_string(), "iproute2"),
                None => (nft_name.clone(), "nftables"),
            };
            if e.kind() == io::ErrorKind::NotFound {
                NftError::NotInstalled { program, package }
            } else {
                NftError::Spawn { program, source: e }
            }
        })?;
        // nft reads the whole script before it acts, so writing it all first cannot deadlock
        // on its output. A write error (nft exited early) shows in its status and stderr.
        let write = match (stdin, child.stdin.take()) {
            (Some(text), Some(mut pipe)) => pipe.write_all(text.as_bytes()),
            _ => Ok(()),
        };
        let out = child.wait_with_output().map_err(|e| NftError::Spawn {
            program: nft_name.clone(),
            source: e,
        })?;
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if out.status.success() {
            if let Err(e) = write {
                return Err(NftError::Spawn {
                    program: nft_name,
                    source: e,
                });
            }
            return String::from_utf8(out.stdout)
                .map_err(|_| NftError::Parse("output is not UTF-8".to_string()));
        }
        if stderr.contains("Operation not permitted") {
            return Err(NftError::Permission { stderr });
        }
        // `ip netns exec` reports a missing program itself: `exec of "nft" failed: No such …`.
        if self.config.netns.is_some()
            && stderr.contains("exec of")
            && stderr.contains("No such file or directory")
        {
            return Err(NftError::NotInstalled {
                program: nft_name,
                package: "nftables",
            });
        }
        Err(NftError::Failed {
            args: args.join(" "),
            status: out.status,
            stderr,
        })
    }
}

/// Names go into a script and a command line unquoted: only a safe alphabet is let through.
fn check_name(what: &'static str, name: &str) -> Result<(), NftError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(NftError::InvalidName {
            what,
            name: name.to_string(),
        })
    }
}

/// Whole seconds, rounded up, within 1 s ..= MAX_TIMEOUT: nft's timeouts have second
/// granularity here, and a zero timeout would mean "none" (a permanent block).
fn timeout_secs(d: Duration) -> u64 {
    let secs = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
    secs.clamp(1, MAX_TIMEOUT.as_secs())
}

/// The addresses split by set, IPv4 first; empty sets left out.
fn by_set(addrs: &[IpAddr]) -> Vec<(&'static str, Vec<IpAddr>)> {
    let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = addrs.iter().partition(|a| a.is_ipv4());
    [("block4", v4), ("block6", v6)]
        .into_iter()
        .filter(|(_, a)| !a.is_empty())
        .collect()
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// Adds the elements of the set in `nft -j list set` output to `out`. An element is either a
/// bare value or `{"elem": {"val": …, "timeout": s, "expires": s}}`; values that are not a
/// single address (ranges or prefixes added by hand) are skipped.
fn parse_set(json: &str, out: &mut Vec<NftBlock>) -> Result<(), NftError> {
    let v: Value = serde_json::from_str(json).map_err(|e| NftError::Parse(e.to_string()))?;
    let items = v["nftables"]
        .as_array()
        .ok_or_else(|| NftError::Parse("no \"nftables\" array".to_string()))?;
    for set in items.iter().filter_map(|i| i.get("set")) {
        let Some(elems) = set.get("elem").and_then(Value::as_array) else {
            continue; // an empty set has no "elem"
        };
        for e in elems {
            let (val, expires) = match e.get("elem") {
                Some(inner) => (&inner["val"], inner["expires"].as_u64()),
                None => (e, None),
            };
            let Some(addr) = val.as_str().and_then(|s| s.parse::<IpAddr>().ok()) else {
                tracing::debug!(element = %e, "nft set element that is not an address: skipped");
                continue;
            };
            // An element with a timeout always has "expires" (0 in its last second).
            let has_timeout = e.get("elem").is_some_and(|i| i.get("timeout").is_some());
            let expires_in = match (has_timeout, expires) {
                (true, Some(s)) => Duration::from_secs(s),
                (true, None) => Duration::ZERO,
                (false, _) => Duration::MAX,
            };
            out.push(NftBlock { addr, expires_in });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
    use std::process::Output;

    fn is_root() -> bool {
        if nix::unistd::geteuid().is_root() {
            return true;
        }
        eprintln!("skipped: nftables tests need root (network namespaces and nft)");
        false
    }

    /// A network namespace of one test, deleted when dropped (also when the test panics).
    struct Netns {
        name: String,
    }

    impl Netns {
        fn new(test: &str) -> Netns {
            let name = format!("vigil-{}-{test}", std::process::id());
            // A namespace left by a killed earlier run with the same pid would make `add` fail.
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
            ip(&["netns", "add", &name]);
            Netns { name }
        }

        fn nft(&self) -> Nft {
            Nft::new(self.config())
        }

        fn config(&self) -> NftConfig {
            NftConfig {
                netns: Some(self.name.clone()),
                ..NftConfig::default()
            }
        }

        /// Runs `f` on a thread that has entered this namespace: sockets it creates live there.
        fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
            let file = std::fs::File::open(format!("/run/netns/{}", self.name)).unwrap();
            std::thread::scope(|s| {
                s.spawn(|| {
                    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                    f()
                })
                .join()
                .unwrap()
            })
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.name])
                .output();
        }
    }

    fn ip(args: &[&str]) -> Output {
        let out = Command::new("ip").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn listed(nft: &Nft) -> HashMap<IpAddr, u64> {
        nft.list()
            .unwrap()
            .into_iter()
            .map(|b| (b.addr, b.expires_in.as_secs()))
            .collect()
    }

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The table as `nft -j list table` shows it: (chain, rule) pairs, chain headers, sets.
    fn table_json(ns: &Netns) -> Value {
        let out = ip(&[
            "netns", "exec", &ns.name, "nft", "-j", "list", "table", "inet", "vigil",
        ]);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    #[test]
    fn names_are_checked_before_use() {
        for bad in [
            "",
            "vigil; flush ruleset",
            "a b",
            "x{",
            &"a".repeat(33),
            "é",
        ] {
            let nft = Nft::new(NftConfig {
                table: bad.to_string(),
                nft: PathBuf::from("/nonexistent/nft"),
                netns: None,
            });
            let e = nft.ensure().unwrap_err();
            assert!(matches!(e, NftError::InvalidName { .. }), "{bad:?}: {e}");
        }
        check_name("t", &"a".repeat(32)).unwrap();
        check_name("t", "vigil_2-test").unwrap();
    }

    #[test]
    fn missing_nft_says_which_package() {
        let nft = Nft::new(NftConfig {
            nft: PathBuf::from("/nonexistent/nft"),
            ..NftConfig::default()
        });
        let e = nft.ensure().unwrap_err();
        assert!(matches!(e, NftError::NotInstalled { .. }), "{e}");
        assert!(e.to_string().contains("nftables package"), "{e}");
    }

    #[test]
    fn unprivileged_nft_is_a_permission_error() {
        if !is_root() {
            return;
        }
        // nft run as nobody without capabilities, as a sensor missing CAP_NET_ADMIN would.
        let dir = tempfile::tempdir().unwrap();
        let wrapper = dir.path().join("nft-nobody");
        std::fs::write(
            &wrapper,
            "#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all nft \"$@\"\n",
        )
        .unwrap();
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let ns = Netns::new("perm");
        let nft = Nft::new(NftConfig {
            nft: wrapper,
            ..ns.config()
        });
        let e = nft.ensure().unwrap_err();
        assert!(matches!(e, NftError::Permission { .. }), "{e}");
        assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");
    }

    #[test]
    fn timeouts_round_up_to_seconds() {
        assert_eq!(timeout_secs(Duration::ZERO), 1);
        assert_eq!(timeout_secs(Duration::from_millis(300)), 1);
        assert_eq!(timeout_secs(Duration::from_millis(1001)), 2);
        assert_eq!(timeout_secs(Duration::from_secs(60)), 60);
        assert_eq!(timeout_secs(Duration::MAX), MAX_TIMEOUT.as_secs());
    }

    #[test]
    fn parses_nft_json() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "inet",
            "name": "block4", "table": "vigil", "type": "ipv4_addr", "flags": ["timeout"],
            "elem": [{"elem": {"val": "10.0.0.1", "timeout": 30, "expires": 29}}, "10.0.0.2",
            {"prefix": {"addr": "10.1.0.0", "len": 16}}]}}]}"#;
        let mut out = Vec::new();
        parse_set(json, &mut out).unwrap();
        assert_eq!(
            out,
            vec![
                NftBlock {
                    addr: v4("10.0.0.1"),
                    expires_in: Duration::from_secs(29)
                },
                NftBlock {
                    addr: v4("10.0.0.2"),
                    expires_in: Duration::MAX
                },
            ]
        );
        // An empty set has no "elem" at all.
        let empty = r#"{"nftables": [{"set": {"name": "block6", "type": "ipv6_addr"}}]}"#;
        parse_set(empty, &mut out).unwrap();
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn ensure_twice_gives_each_rule_once() {
        if !is_root() {
            return;
        }
        let ns = Netns::new("ensure");
        let nft = ns.nft();
        nft.ensure().unwrap();
        nft.ensure().unwrap();

        let json = table_json(&ns);
        let items = json["nftables"].as_array().unwrap();
        let mut rules: Vec<(String, String, String, String)> = Vec::new();
        let mut chains = Vec::new();
        let mut sets = Vec::new();
        for item in items {
            if let Some(r) = item.get("rule") {
                let expr = r["expr"].as_array().unwrap();
                assert_eq!(expr.len(), 2, "{r}");
                let m = &expr[0]["match"];
                assert_eq!(expr[1], serde_json::json!({"drop": null}), "{r}");
                rules.push((
                    r["chain"].as_str().unwrap().to_string(),
                    m["left"]["payload"]["protocol"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    m["left"]["payload"]["field"].as_str().unwrap().to_string(),
                    m["right"].as_str().unwrap().to_string(),
                ));
            } else if let Some(c) = item.get("chain") {
                chains.push((
                    c["name"].as_str().unwrap().to_string(),
                    c["hook"].as_str().unwrap().to_string(),
                    c["prio"].as_i64().unwrap(),
                    c["policy"].as_str().unwrap().to_string(),
                ));
            } else if let Some(s) = item.get("set") {
                assert_eq!(s["flags"], serde_json::json!(["timeout"]), "{s}");
                sets.push((
                    s["name"].as_str().unwrap().to_string(),
                    s["type"].as_str().unwrap().to_string(),
                ));
            }
        }
        let r = |c: &str, p: &str, f: &str, s: &str| {
            (c.to_string(), p.to_string(), f.to_string(), s.to_string())
        };
        assert_eq!(
            rules,
            vec![
                r("input", "ip", "saddr", "@block4"),
                r("input", "ip6", "saddr", "@block6"),
                r("forward", "ip", "saddr", "@block4"),
                r("forward", "ip6", "saddr", "@block6"),
                r("forward", "ip", "daddr", "@block4"),
                r("forward", "ip6", "daddr", "@block6"),
                r("output", "ip", "daddr", "@block4"),
                r("output", "ip6", "daddr", "@block6"),
            ]
        );
        let c = |n: &str| (n.to_string(), n.to_string(), -10, "accept".to_string());
        assert_eq!(chains, vec![c("input"), c("forward"), c("output")]);
        assert_eq!(
            sets,
            vec![
                ("block4".to_string(), "ipv4_addr".to_string()),
                ("block6".to_string(), "ipv6_addr".to_string())
            ]
        );

        nft.remove_table().unwrap();
        nft.remove_table().unwrap(); // no table: not an error
        assert_eq!(nft.list().unwrap(), vec![]);
    }

    #[test]
    fn block_reblock_unblock() {
        if !is_root() {
            return;
        }
        let ns = Netns::new("block");
        let nft = ns.nft();
        assert_eq!(nft.list().unwrap(), vec![], "no table yet: empty");
        nft.ensure().unwrap();
        let a4 = v4("192.0.2.7");
        let a6: IpAddr = "2001:db8::7".parse().unwrap();
        nft.block(&[(a4, Duration::from_secs(30)), (a6, Duration::from_secs(60))])
            .unwrap();
        let l = listed(&nft);
        assert_eq!(l.len(), 2, "{l:?}");
        assert!((28..=30).contains(&l[&a4]), "{l:?}");
        assert!((58..=60).contains(&l[&a6]), "{l:?}");

        // Longer: extended; shorter: shortened. A v4-mapped v6 address is the v4 one.
        nft.block(&[(a4, Duration::from_secs(300))]).unwrap();
        assert!((298..=300).contains(&listed(&nft)[&a4]));
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        nft.block(&[(mapped, Duration::from_secs(10))]).unwrap();
        let l = listed(&nft);
        assert_eq!(l.len(), 2, "{l:?}");
        assert!((8..=10).contains(&l[&a4]), "{l:?}");

        // Twice in one batch: the last duration wins.
        nft.block(&[(a6, Duration::from_secs(20)), (a6, Duration::from_secs(90))])
            .unwrap();
        assert!((88..=90).contains(&listed(&nft)[&a6]));

        // Unblocking an address that is not blocked is fine, in the same batch as one that is.
        let absent = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x99));
        nft.unblock(&[a4, v4("198.51.100.1"), absent]).unwrap();
        assert_eq!(listed(&nft).keys().collect::<Vec<_>>(), vec![&a6]);
        nft.unblock(&[a4]).unwrap();
        nft.unblock(&[]).unwrap();
        nft.block(&[]).unwrap();
        nft.unblock(&[a6]).unwrap();
        assert_eq!(nft.list().unwrap(), vec![]);
    }

    #[test]
    fn short_block_lapses() {
        if !is_root() {
            return;
        }
        let ns = Netns::new("lapse");
        let nft = ns.nft();
        nft.ensure().unwrap();
        // 300 ms rounds up to 1 s.
        nft.block(&[(v4("192.0.2.1"), Duration::from_millis(300))])
            .unwrap();
        assert_eq!(nft.list().unwrap().len(), 1);
        std::thread::sleep(Duration::from_millis(2500));
        assert_eq!(nft.list().unwrap(), vec![]);
    }

    #[test]
    fn blocks_survive_a_restart() {
        if !is_root() {
            return;
        }
        let ns = Netns::new("restart");
        let first = ns.nft();
        first.ensure().unwrap();
        first
            .block(&[(v4("192.0.2.9"), Duration::from_secs(600))])
            .unwrap();
        drop(first);

        // A new daemon: a fresh Nft on the same table, ensured again.
        let second = ns.nft();
        second.ensure().unwrap();
        let l = listed(&second);
        assert!((590..=600).contains(&l[&v4("192.0.2.9")]), "{l:?}");
        let rules = table_json(&ns)["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i.get("rule").is_some())
            .count();
        assert_eq!(rules, RULES.len());
    }

    /// Real traffic: a client namespace and a server namespace joined by a veth pair, the table
    /// in the server's. A blocked client address cannot connect; another address of the same
    /// client still can.
    #[test]
    fn block_drops_real_traffic() {
        if !is_root() {
            return;
        }
        let server = Netns::new("srv");
        let client = Netns::new("cli");
        ip(&[
            "-n",
            &client.name,
            "link",
            "add",
            "veth0",
            "type",
            "veth",
            "peer",
            "name",
            "veth1",
            "netns",
            &server.name,
        ]);
        for a in ["10.77.0.2/24", "10.77.0.3/24"] {
            ip(&["-n", &client.name, "addr", "add", a, "dev", "veth0"]);
        }
        ip(&["-n", &client.name, "link", "set", "veth0", "up"]);
        ip(&[
            "-n",
            &server.name,
            "addr",
            "add",
            "10.77.0.1/24",
            "dev",
            "veth1",
        ]);
        ip(&["-n", &server.name, "link", "set", "veth1", "up"]);

        // The kernel completes the handshake for a listening socket: no accept() needed.
        let listener = server.run(|| TcpListener::bind("10.77.0.1:0").unwrap());
        let dst = listener.local_addr().unwrap();
        let connect = |src: &str| -> io::Result<()> {
            let src: SocketAddr = format!("{src}:0").parse().unwrap();
            client.run(move || {
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
                s.bind(&src.into())?;
                s.connect_timeout(&dst.into(), Duration::from_secs(1))
            })
        };

        let nft = server.nft();
        nft.ensure().unwrap();
        connect("10.77.0.2").expect("connect before the block");
        nft.block(&[(v4("10.77.0.2"), Duration::from_secs(60))])
            .unwrap();
        let e = connect("10.77.0.2").expect_err("a blocked address must not connect");
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            "{e}"
        );
        connect("10.77.0.3").expect("another address of the client is not blocked");
        nft.unblock(&[v4("10.77.0.2")]).unwrap();
        connect("10.77.0.2").expect("connect after the unblock");
        drop(listener);
    }
}
