//! The appliance packaging, with the real tools: `appliance/install.sh` into a staging root
//! (twice, with an operator's edit in between), `systemd-analyze verify` and `security` on the
//! units as installed, and `appliance/nic-prepare.sh` on a veth pair in a network namespace.
//! Checks that need a tool or privilege this machine lacks print `SKIP ...` and pass.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("vigil-appliance-")
        .tempdir()
        .expect("temp dir")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// stdout then stderr.
fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tool_runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn skip(test: &str, why: &str) {
    eprintln!("SKIP appliance::{test}: {why}");
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// `install.sh --root ROOT` with the binary cargo built for this test (no cargo inside).
fn install(root: &Path, extra: &[&str]) -> Output {
    let out = run(Command::new(repo().join("appliance/install.sh"))
        .arg("--root")
        .arg(root)
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_vigil"))
        .args(extra)
        .env_remove("VIGIL_BIN"));
    assert!(out.status.success(), "install.sh failed:\n{}", text(&out));
    out
}

/// The `install: ...` summary line: `nothing changed` or `N changed`.
fn install_summary(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .rev()
        .find(|l| l.ends_with(" changed"))
        .unwrap_or_else(|| panic!("no summary line in:\n{stdout}"))
        .to_string()
}

fn assert_file(path: &Path, expected: &[u8], want_mode: u32) {
    let got = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(got == expected, "{}: content differs", path.display());
    assert_eq!(
        mode(path),
        want_mode,
        "{}: mode {:o}",
        path.display(),
        mode(path)
    );
}

#[test]
fn install_stages_files_and_is_idempotent() {
    let dir = tempdir();
    let root = dir.path();
    let first = install(root, &[]);
    assert_ne!(install_summary(&first), "install: nothing changed");

    let shipped_config = fs::read(repo().join("appliance/vigil.toml")).unwrap();
    let config = root.join("etc/vigil/vigil.toml");
    assert_file(
        &root.join("usr/local/bin/vigil"),
        &fs::read(env!("CARGO_BIN_EXE_vigil")).unwrap(),
        0o755,
    );
    assert_file(
        &root.join("usr/local/lib/vigil/nic-prepare.sh"),
        &fs::read(repo().join("appliance/nic-prepare.sh")).unwrap(),
        0o755,
    );
    assert_file(&config, &shipped_config, 0o644);
    assert_file(
        &root.join("etc/vigil/rules/sample.rules"),
        &fs::read(repo().join("samples/sample.rules")).unwrap(),
        0o644,
    );
    // The default prefix is the one the units name, so they are installed unchanged.
    for unit in ["vigil.service", "vigil-nic@.service"] {
        assert_file(
            &root.join("etc/systemd/system").join(unit),
            &fs::read(repo().join("systemd").join(unit)).unwrap(),
            0o644,
        );
    }
    for d in ["var/log/vigil", "var/lib/vigil"] {
        assert!(root.join(d).is_dir(), "{d} created");
        assert_eq!(mode(&root.join(d)), 0o750, "{d} mode");
    }
    assert!(
        text(&first).contains("--root is not /"),
        "a staging root skips the user and says so:\n{}",
        text(&first)
    );

    // The shipped binary accepts the shipped config.
    let check = run(Command::new(root.join("usr/local/bin/vigil"))
        .args(["config", "check"])
        .arg(&config));
    assert!(check.status.success(), "config check:\n{}", text(&check));

    let second = install(root, &[]);
    assert_eq!(
        install_summary(&second),
        "install: nothing changed",
        "second run:\n{}",
        text(&second)
    );

    // An operator's edit survives; the shipped config lands beside it.
    let mut edited = shipped_config.clone();
    edited.extend_from_slice(b"# tuned for this site\n");
    fs::write(&config, &edited).unwrap();
    let third = install(root, &[]);
    assert_eq!(fs::read(&config).unwrap(), edited, "operator's config kept");
    assert_file(
        &root.join("etc/vigil/vigil.toml.new"),
        &shipped_config,
        0o644,
    );
    assert!(
        text(&third).contains("kept ") && text(&third).contains("vigil.toml.new"),
        "third run says what it kept:\n{}",
        text(&third)
    );
    assert_eq!(install_summary(&third), "install: 1 changed");
    let fourth = install(root, &[]);
    assert_eq!(install_summary(&fourth), "install: nothing changed");
    assert_eq!(fs::read(&config).unwrap(), edited);

    // A damaged install is repaired: a wrong mode counts as a change.
    fs::set_permissions(
        root.join("usr/local/bin/vigil"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let fifth = install(root, &[]);
    assert_eq!(install_summary(&fifth), "install: 1 changed");
    assert_eq!(mode(&root.join("usr/local/bin/vigil")), 0o755);
}

#[test]
fn install_prefix_is_written_into_the_units() {
    let dir = tempdir();
    let root = dir.path();
    install(root, &["--prefix", "/opt/vigil"]);
    assert!(root.join("opt/vigil/bin/vigil").is_file());
    assert!(root.join("opt/vigil/lib/vigil/nic-prepare.sh").is_file());
    let unit = fs::read_to_string(root.join("etc/systemd/system/vigil.service")).unwrap();
    assert!(unit.contains("\nExecStart=/opt/vigil/bin/vigil run --config /etc/vigil/vigil.toml\n"));
    let nic = fs::read_to_string(root.join("etc/systemd/system/vigil-nic@.service")).unwrap();
    assert!(nic.contains("\nExecStart=/opt/vigil/lib/vigil/nic-prepare.sh %i "));
    assert!(!unit.contains("/usr/local") && !nic.contains("/usr/local"));

    let bare = tempdir();
    install(bare.path(), &["--no-systemd"]);
    assert!(!bare.path().join("etc/systemd").exists(), "--no-systemd");
}

/// A staging root `systemd-analyze --root=` can verify: the units as install.sh installs them,
/// beside the host's own units (verify follows vigil.service to sysinit.target and
/// network-online.target) and /bin/kill (ExecReload=). Paths in ExecStart= are checked under
/// the root, so the installed binary and script are what is verified. None when this machine
/// has no systemd-analyze or no systemd units.
fn systemd_root(test: &str) -> Option<tempfile::TempDir> {
    if !tool_runs("systemd-analyze", "--version") {
        skip(test, "systemd-analyze is not installed");
        return None;
    }
    let host_units = Path::new("/usr/lib/systemd/system");
    let kill = ["/bin/kill", "/usr/bin/kill"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file());
    let (true, Some(kill)) = (host_units.join("sysinit.target").is_file(), kill) else {
        skip(
            test,
            "no /usr/lib/systemd/system/sysinit.target or /bin/kill",
        );
        return None;
    };
    let dir = tempdir();
    let root = dir.path();
    install(root, &[]);
    let units = root.join("usr/lib/systemd/system");
    fs::create_dir_all(&units).unwrap();
    for entry in fs::read_dir(host_units).unwrap() {
        let entry = entry.unwrap();
        let dest = units.join(entry.file_name());
        let ty = entry.file_type().unwrap();
        if ty.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path()).unwrap(), dest).unwrap();
        } else if ty.is_file() {
            fs::copy(entry.path(), dest).unwrap();
        }
    }
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::copy(kill, root.join("bin/kill")).unwrap();
    Some(dir)
}

fn analyze(root: &Path, args: &[&str]) -> Output {
    run(Command::new("systemd-analyze")
        .arg(format!("--root={}", root.display()))
        .args(args)
        .current_dir(root))
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let Some(dir) = systemd_root("units_pass_systemd_analyze_verify") else {
        return;
    };
    let root = dir.path();
    // verify exits 0 on unknown keys and bad values (it only warns): clean means no output.
    let out = analyze(root, &["verify", "vigil.service", "vigil-nic@eth1.service"]);
    assert!(
        out.status.success() && text(&out).trim().is_empty(),
        "systemd-analyze verify:\n{}",
        text(&out)
    );

    // The check is not vacuous here: a bad key, a bad value and a missing executable are found.
    let system = root.join("etc/systemd/system");
    let unit = fs::read_to_string(system.join("vigil.service")).unwrap();
    let broken = unit
        .replace("WatchdogSec=30s", "WatchdogSec=30s\nWatchDogSec=30s")
        .replace("ProtectSystem=strict", "ProtectSystem=stricter")
        .replace("/usr/local/bin/vigil", "/usr/local/bin/vigil-missing");
    fs::write(system.join("vigil-broken.service"), broken).unwrap();
    let out = analyze(root, &["verify", "vigil-broken.service"]);
    let report = text(&out);
    for needle in ["WatchDogSec", "stricter", "vigil-missing"] {
        assert!(
            report.contains(needle),
            "verify misses `{needle}`:\n{report}"
        );
    }
}

/// Exposure score and the `✓`/`✗` verdicts of `systemd-analyze security --offline=yes`.
struct Security {
    exposure: f64,
    lines: Vec<String>,
}

impl Security {
    fn of(root: &Path, unit: &str) -> Option<Security> {
        let out = analyze(root, &["security", "--offline=yes", unit]);
        let report = text(&out);
        if !out.status.success() && report.contains("offline") {
            return None; // systemd < 250
        }
        assert!(out.status.success(), "security {unit}:\n{report}");
        let exposure = report
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|score| score.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
        Some(Security {
            exposure,
            lines: report.lines().map(str::to_string).collect(),
        })
    }

    fn assert(&self, unit: &str, setting: &str, passes: bool) {
        let mark = if passes { '✓' } else { '✗' };
        assert!(
            self.lines
                .iter()
                .any(|l| l.starts_with(mark)
                    && l[mark.len_utf8()..].trim_start().starts_with(setting)),
            "{unit}: expected {mark} {setting} in:\n{}",
            self.lines.join("\n")
        );
    }
}

#[test]
fn units_hardening_per_systemd_analyze_security() {
    let test = "units_hardening_per_systemd_analyze_security";
    let Some(dir) = systemd_root(test) else {
        return;
    };
    let Some(sensor) = Security::of(dir.path(), "vigil.service") else {
        skip(
            test,
            "systemd-analyze security has no --offline (systemd < 250)",
        );
        return;
    };
    let unit = "vigil.service";
    assert!(
        sensor.exposure <= 3.0,
        "{unit}: exposure {}",
        sensor.exposure
    );
    for setting in [
        "User=/DynamicUser=",
        "NoNewPrivileges=",
        "CapabilityBoundingSet=~CAP_SET(UID|GID|PCAP)",
        "CapabilityBoundingSet=~CAP_(DAC_*|FOWNER|IPC_OWNER)",
        "CapabilityBoundingSet=~CAP_SYS_MODULE",
        "ProtectSystem=",
        "ProtectHome=",
        "PrivateTmp=",
        "ProtectKernelTunables=",
        "ProtectKernelModules=",
        "ProtectControlGroups=",
        "LockPersonality=",
        "SystemCallArchitectures=",
        "RestrictNamespaces=~net",
    ] {
        sensor.assert(unit, setting, true);
    }
    // Capture needs these; the JIT needs W+X memory.
    for setting in [
        "CapabilityBoundingSet=~CAP_NET_ADMIN",
        "CapabilityBoundingSet=~CAP_BPF",
        "CapabilityBoundingSet=~CAP_SYS_ADMIN",
        "RestrictAddressFamilies=~AF_PACKET",
        "MemoryDenyWriteExecute=",
    ] {
        sensor.assert(unit, setting, false);
    }

    let unit = "vigil-nic@eth1.service";
    let nic = Security::of(dir.path(), unit).expect("--offline worked for vigil.service");
    assert!(nic.exposure <= 3.0, "{unit}: exposure {}", nic.exposure);
    for setting in [
        "MemoryDenyWriteExecute=",
        "CapabilityBoundingSet=~CAP_SYS_ADMIN",
        "CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)",
        "NoNewPrivileges=",
        "ProtectSystem=",
    ] {
        nic.assert(unit, setting, true);
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A network namespace, deleted (with its veth pair) on drop, even when an assertion failed.
struct Netns(String);

impl Netns {
    fn create(name: String) -> Result<Netns, String> {
        let out = run(Command::new("ip").args(["netns", "add", &name]));
        if !out.status.success() {
            return Err(text(&out));
        }
        Ok(Netns(name))
    }

    /// `ip netns exec NS ...`: mounts the namespace's own /sys, as ethtool expects.
    fn exec(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
        run(Command::new("ip")
            .args(["netns", "exec", &self.0])
            .arg(program)
            .args(args))
    }

    fn ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.exec(program, args);
        assert!(out.status.success(), "{program} {args:?}:\n{}", text(&out));
        text(&out)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The `N changed` count of nic-prepare's summary line.
fn nic_changed(out: &Output, iface: &str) -> usize {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("nic-prepare: {iface}: ");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary line in:\n{}", text(out)))
}

/// `ethtool -k` value of a feature: "on", "off", "off [fixed]" ...
fn feature(ns: &Netns, iface: &str, name: &str) -> String {
    let features = ns.ok("ethtool", &["-k", iface]);
    features
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in:\n{features}"))
        .to_string()
}

#[test]
fn nic_prepare_on_a_veth_in_a_namespace() {
    let test = "nic_prepare_on_a_veth_in_a_namespace";
    if !is_root() {
        skip(test, "needs root (network namespace, ethtool -K)");
        return;
    }
    if !tool_runs("ip", "-V") || !tool_runs("ethtool", "--version") {
        skip(
            test,
            "needs iproute2 and ethtool (appliance/install-deps.sh)",
        );
        return;
    }
    let ns = match Netns::create(format!("vigil-test-{}", std::process::id())) {
        Ok(ns) => ns,
        Err(e) => {
            skip(test, &format!("cannot create a network namespace: {e}"));
            return;
        }
    };
    let script = repo().join("appliance/nic-prepare.sh");
    let script = script.to_str().unwrap();
    let (iface, peer) = ("vg0", "vg1");
    ns.ok(
        "ip",
        &["link", "add", iface, "type", "veth", "peer", "name", peer],
    );
    // The state a capture port should not be in: down, not promiscuous, offloads on (veth
    // starts with GRO off), one RX queue.
    ns.ok(
        "ethtool",
        &[
            "-K", iface, "gro", "on", "tso", "on", "gso", "on", "rxvlan", "on",
        ],
    );
    assert_eq!(feature(&ns, iface, "generic-receive-offload"), "on");

    let dry = ns.exec(script, &[iface, "--dry-run"]);
    assert!(dry.status.success(), "dry run:\n{}", text(&dry));
    assert!(text(&dry).contains("generic-receive-offload: off (would change, is on)"));
    assert!(nic_changed(&dry, iface) > 0);
    assert_eq!(
        feature(&ns, iface, "generic-receive-offload"),
        "on",
        "dry run changed nothing"
    );

    let first = ns.exec(script, &[iface, "--queues", "2"]);
    let report = text(&first);
    assert!(first.status.success(), "first run:\n{report}");
    for line in [
        "link up: on (changed, was off)",
        "promiscuous: on (changed, was off)",
        "generic-receive-offload: off (changed, was on)",
        "tcp-segmentation-offload: off (changed, was on)",
        "generic-segmentation-offload: off (changed, was on)",
        "rx-vlan-offload: off (changed, was on)",
        "queues: rx 2 (changed, was 1)",
        // veth has no ring parameters and LRO fixed off: reported, not errors.
        "rx ring: not supported",
        "large-receive-offload: off (already)",
    ] {
        assert!(
            report.contains(&format!("{iface}: {line}")),
            "expected `{line}` in:\n{report}"
        );
    }
    assert!(nic_changed(&first, iface) >= 7, "{report}");

    for name in [
        "generic-receive-offload",
        "tcp-segmentation-offload",
        "generic-segmentation-offload",
        "rx-vlan-offload",
    ] {
        assert!(
            feature(&ns, iface, name).starts_with("off"),
            "{name} after nic-prepare"
        );
    }
    let link = ns.ok("ip", &["-o", "link", "show", "dev", iface]);
    let flags = link.split(['<', '>']).nth(1).unwrap_or_default();
    let flags: Vec<&str> = flags.split(',').collect();
    assert!(
        flags.contains(&"UP") && flags.contains(&"PROMISC"),
        "{link}"
    );
    let channels = ns.ok("ethtool", &["-l", iface]);
    let current = channels
        .split("Current hardware settings:")
        .nth(1)
        .unwrap_or_default();
    assert!(
        current
            .lines()
            .any(|l| l.split_whitespace().eq(["RX:", "2"])),
        "{channels}"
    );

    let second = ns.exec(script, &[iface, "--queues", "2"]);
    assert!(second.status.success(), "second run:\n{}", text(&second));
    assert_eq!(
        nic_changed(&second, iface),
        0,
        "second run:\n{}",
        text(&second)
    );
    assert!(!text(&second).contains("(changed"), "{}", text(&second));

    // A request the driver cannot meet fails, after applying everything else.
    let too_many = ns.exec(script, &[iface, "--queues", "64"]);
    assert_eq!(too_many.status.code(), Some(1), "{}", text(&too_many));
    assert!(
        String::from_utf8_lossy(&too_many.stderr).contains("queues: FAILED"),
        "{}",
        text(&too_many)
    );

    let missing = ns.exec(script, &["nosuch0"]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("interface 'nosuch0' does not exist"),
        "{}",
        text(&missing)
    );
}
