//! Network namespaces and links a test creates (and removes on drop), and commands run in them.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// True (after saying why) when the test cannot run here.
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("skipping {test}: needs root (network namespaces, raw sockets, nftables)");
    true
}

/// Runs a command that must succeed.
pub fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e} (run appliance/install-deps.sh)"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Namespaces named `<prefix><role>-<pid>-<n>`, deleted on drop.
pub struct Namespaces {
    names: Vec<String>,
    suffix: String,
}

impl Namespaces {
    pub fn new() -> Namespaces {
        Namespaces {
            names: Vec::new(),
            suffix: format!(
                "{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            ),
        }
    }

    /// Adds a namespace with loopback up and IPv6 off (no router solicitations or MLD reports
    /// of its own on the links); returns its name.
    pub fn add(&mut self, role: &str) -> String {
        let name = format!("vt{role}-{}", self.suffix);
        sh(&["ip", "netns", "add", &name]);
        self.names.push(name.clone());
        for key in ["all", "default"] {
            sh(&[
                "ip",
                "netns",
                "exec",
                &name,
                "sysctl",
                "-q",
                "-w",
                &format!("net.ipv6.conf.{key}.disable_ipv6=1"),
            ]);
        }
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// A veth pair `a` (in `ns_a`) ↔ `b` (in `ns_b`), both up, without the offloads that would
    /// merge or split frames between the two ends.
    pub fn link(&self, ns_a: &str, a: &str, ns_b: &str, b: &str) {
        sh(&[
            "ip", "-n", ns_a, "link", "add", a, "type", "veth", "peer", "name", b, "netns", ns_b,
        ]);
        for (ns, dev) in [(ns_a, a), (ns_b, b)] {
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            let _ = Command::new("ip")
                .args(["netns", "exec", ns, "ethtool", "-K", dev])
                .args(["gro", "off", "tso", "off", "gso", "off", "tx", "off"])
                .args(["rxvlan", "off", "txvlan", "off"])
                .output();
        }
    }

    /// Runs `args` inside `ns` (`ip netns exec`) and returns its output, whatever its status.
    pub fn exec(ns: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec {ns} {args:?}: {e}"))
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
