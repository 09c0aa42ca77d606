//! Capture-capable interfaces as the kernel lists them in sysfs (`vigil interfaces`).

use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    pub name: String,
    /// `up`, `down`, `unknown` … (operstate).
    pub state: String,
    /// Kernel driver (`veth`, `ixgbe`, …); empty for virtual devices without one.
    pub driver: String,
    pub rx_queues: u32,
    pub mtu: u32,
    pub mac: String,
    /// Whether AF_XDP zero-copy is possible; `None` when the kernel does not say.
    pub xdp_zero_copy: Option<bool>,
}

/// Every network interface but loopback, sorted by name.
pub fn list() -> std::io::Result<Vec<InterfaceInfo>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/sys/class/net")? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let dir = entry.path();
        let read = |file: &str| {
            std::fs::read_to_string(dir.join(file))
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        // ARPHRD_LOOPBACK: nothing a sensor captures.
        if read("type") == "772" {
            continue;
        }
        out.push(InterfaceInfo {
            state: read("operstate"),
            driver: driver(&dir),
            rx_queues: rx_queues(&dir),
            mtu: read("mtu").parse().unwrap_or(0),
            mac: read("address"),
            xdp_zero_copy: super::af_xdp::supports_zero_copy(&name),
            name,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn driver(dir: &Path) -> String {
    if let Ok(target) = std::fs::read_link(dir.join("device/driver")) {
        if let Some(name) = target.file_name() {
            return name.to_string_lossy().into_owned();
        }
    }
    // Virtual devices have no device link; uevent names their kind (veth, bridge, …).
    std::fs::read_to_string(dir.join("uevent"))
        .ok()
        .and_then(|u| {
            u.lines()
                .find_map(|l| l.strip_prefix("DEVTYPE=").map(str::to_string))
        })
        .unwrap_or_default()
}

fn rx_queues(dir: &Path) -> u32 {
    std::fs::read_dir(dir.join("queues"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count() as u32
        })
        .unwrap_or(0)
}
