//! `vigil verify`: runs suricata-verify cases (a folder with `test.yaml`, a pcap, maybe rules
//! and a `suricata.yaml`) through [`replay`] in-process and evaluates their checks with
//! upstream `run.py`'s semantics. Nothing here knows about particular event types: every
//! `filter` check is evaluated against whatever Vigil wrote.
//!
//! Outcome of a case: **pass** when every evaluated check holds, **fail** otherwise (a broken
//! `test.yaml` too), **skip** when it cannot be run: an unmet `requires:`, no pcap, a Suricata
//! setting Vigil cannot honour ([`SETTINGS`]), or no check that applies. An expectations file
//! (`case<TAB>fail|skip<TAB>reason`) lists the known failures and skips; a run is OK when
//! nothing else failed or was skipped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use serde_yaml_ng::Value as Yaml;

use crate::config::Config;
use crate::replay::{replay, ReplayOptions};

/// The Suricata release Vigil is held to for `min-version`/`lt-version`/`version` gates: 8.0,
/// at the patch level of the reference run that passes the corpus (corpus README: 8.0.6).
pub const SURICATA_VERSION: Version = Version {
    major: 8,
    minor: 0,
    patch: 6,
};

/// Build features (`requires: features:`) Vigil counts as present.
pub const FEATURES: &[&str] = &["HAVE_JA3", "HAVE_JA4"];

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Expectations {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: no suricata-verify case (a folder with test.yaml) under it")]
    NoCases { path: PathBuf },
    #[error("cannot write the report")]
    Report(#[source] std::io::Error),
}

/// What `vigil verify` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Folders to search for cases (a case is a folder holding `test.yaml`; cases nest).
    pub dirs: Vec<PathBuf>,
    /// Write each case's output to `keep/<case name>/eve.json` and leave it there.
    pub keep: Option<PathBuf>,
    /// Only cases whose name contains this.
    pub filter: Option<String>,
    /// Known failures and skips, `case<TAB>fail|skip<TAB>reason`.
    pub expectations: Option<PathBuf>,
    /// Print only what the expectations do not explain, and the summary.
    pub quiet: bool,
    /// Also print skipped cases and every failing check.
    pub verbose: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Pass,
    /// The first failing check, then the others.
    Fail(Vec<String>),
    Skip(String),
}

#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    pub outcome: Outcome,
    /// Checks evaluated and checks skipped (with why), for `-v`.
    pub evaluated: usize,
    pub skipped_checks: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Summary {
    pub results: Vec<CaseResult>,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Failures and skips the expectations do not list (or list with another status).
    pub unexpected: Vec<String>,
    /// Cases listed as failing or skipped that pass now.
    pub now_passing: Vec<String>,
}

impl Summary {
    /// Every failure and skip is listed in the expectations.
    pub fn ok(&self) -> bool {
        self.unexpected.is_empty()
    }

    pub fn line(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Fail,
    Skip,
}

/// The expectations file: case name → (status, reason).
pub fn load_expectations(path: &Path) -> Result<BTreeMap<String, (Expected, String)>, VerifyError> {
    let text = std::fs::read_to_string(path).map_err(|source| VerifyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_expectations(&text, path)
}

pub fn parse_expectations(
    text: &str,
    origin: &Path,
) -> Result<BTreeMap<String, (Expected, String)>, VerifyError> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let err = |message: String| VerifyError::Expectations {
            path: origin.to_path_buf(),
            line: i + 1,
            message,
        };
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let mut cols = line.splitn(3, '\t');
        let (Some(case), Some(status), Some(reason)) = (cols.next(), cols.next(), cols.next())
        else {
            return Err(err("want case<TAB>fail|skip<TAB>reason".into()));
        };
        let status = match status.trim() {
            "fail" => Expected::Fail,
            "skip" => Expected::Skip,
            other => return Err(err(format!("status {other:?} is neither fail nor skip"))),
        };
        if reason.trim().is_empty() {
            return Err(err(format!("{case}: a reason is required")));
        }
        if out
            .insert(case.trim().to_string(), (status, reason.trim().to_string()))
            .is_some()
        {
            return Err(err(format!("{case} is listed twice")));
        }
    }
    Ok(out)
}

/// Every case under `root`, as (name relative to `root`, folder), sorted by name. `root`
/// itself may be a case (named by its last component).
pub fn find_cases(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    if root.join("test.yaml").is_file() {
        let name = root.file_name().map_or_else(
            || root.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        out.push((name, root.to_path_buf()));
    }
    walk(root, root, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() || entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.join("test.yaml").is_file() {
            let name = path.strip_prefix(root).unwrap_or(&path);
            let name = name
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((name, path.clone()));
        }
        walk(root, &path, out);
    }
}

/// Runs every selected case, prints the report to `out` (last line: the summary) and returns
/// the summary; `Summary::ok` is the exit status.
pub fn run(opts: &VerifyOptions, out: &mut dyn Write) -> Result<Summary, VerifyError> {
    let expectations = match &opts.expectations {
        Some(path) => load_expectations(path)?,
        None => BTreeMap::new(),
    };
    let mut cases = Vec::new();
    for dir in &opts.dirs {
        if !dir.is_dir() {
            return Err(VerifyError::Read {
                path: dir.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a folder"),
            });
        }
        let found = find_cases(dir);
        if found.is_empty() {
            return Err(VerifyError::NoCases { path: dir.clone() });
        }
        cases.extend(found);
    }
    if let Some(f) = &opts.filter {
        cases.retain(|(name, _)| name.contains(f.as_str()));
    }
    let mut summary = Summary::default();
    let w =
        |out: &mut dyn Write, line: String| writeln!(out, "{line}").map_err(VerifyError::Report);
    for (name, dir) in &cases {
        let result = run_case(name, dir, opts.keep.as_deref());
        let listed = expectations.get(name);
        match &result.outcome {
            Outcome::Pass => {
                summary.passed += 1;
                if let Some((_, reason)) = listed {
                    summary.now_passing.push(name.clone());
                    w(
                        out,
                        format!("now passes: remove from expectations: {name} ({reason})"),
                    )?;
                }
            }
            Outcome::Fail(checks) => {
                summary.failed += 1;
                let expected = matches!(listed, Some((Expected::Fail, _)));
                if !expected {
                    summary.unexpected.push(name.clone());
                }
                if !opts.quiet || !expected {
                    let first = checks.first().map_or("failed", String::as_str);
                    w(out, format!("FAIL {name}: {first}"))?;
                    if opts.verbose {
                        for c in checks.iter().skip(1) {
                            w(out, format!("    also: {c}"))?;
                        }
                    }
                }
                if !expected {
                    w(out, format!("    unexpected: {}", describe(listed)))?;
                }
            }
            Outcome::Skip(reason) => {
                summary.skipped += 1;
                let expected = matches!(listed, Some((Expected::Skip, _)));
                if !expected {
                    summary.unexpected.push(name.clone());
                }
                if opts.verbose || !expected {
                    w(out, format!("SKIP {name}: {reason}"))?;
                }
                if !expected {
                    w(out, format!("    unexpected: {}", describe(listed)))?;
                }
            }
        }
        if opts.verbose && !result.skipped_checks.is_empty() {
            for c in &result.skipped_checks {
                w(out, format!("    skipped check: {c}"))?;
            }
        }
        summary.results.push(result);
    }
    if !summary.unexpected.is_empty() {
        let mut line = format!(
            "{} case(s) failed or skipped without an expectation",
            summary.unexpected.len()
        );
        if summary.unexpected.len() <= 20 {
            let _ = write!(line, ": {}", summary.unexpected.join(" "));
        }
        w(out, line)?;
    }
    w(out, summary.line())?;
    Ok(summary)
}

fn describe(listed: Option<&(Expected, String)>) -> String {
    match listed {
        None => "not in the expectations".into(),
        Some((Expected::Fail, r)) => format!("expected to fail ({r})"),
        Some((Expected::Skip, r)) => format!("expected to be skipped ({r})"),
    }
}

// ---------------------------------------------------------------------------------------------
// One case.

/// What one case runs with, worked out from test.yaml, its args and its suricata.yaml.
#[derive(Debug)]
pub struct CasePlan {
    pub pcap: PathBuf,
    /// The case's rules file, loaded for its replay.
    pub rules: Option<PathBuf>,
    pub setup: CaseSetup,
}

/// What Suricata settings map onto: Vigil's config, the worker count and the EVE output view.
#[derive(Debug, Clone)]
pub struct CaseSetup {
    pub config: Config,
    pub workers: usize,
    pub view: OutputView,
    /// Settings no [`SETTINGS`] entry honours, with why: the case is skipped.
    pub unsupported: Vec<String>,
    /// Unsupported options of one event type (`outputs.eve-log.types.<type>.…`), by type:
    /// only checks on that type (or on no type in particular) are skipped.
    pub unsupported_by_type: BTreeMap<String, Vec<String>>,
}

/// Which events Suricata would have written with the case's `outputs: - eve-log:` settings.
/// Vigil always writes all it has; the runner keeps what the case's config would log.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputView {
    /// `eve-log.types` (`None`: Suricata's default config, every type).
    pub types: Option<Vec<String>>,
    /// Anomaly sub-types; Suricata's default logs only `applayer` ones.
    pub anomaly_decode: bool,
    pub anomaly_stream: bool,
    pub anomaly_applayer: bool,
    /// `stats.enabled: no` writes no stats events.
    pub stats: bool,
}

impl Default for OutputView {
    fn default() -> Self {
        OutputView {
            types: None,
            anomaly_decode: false,
            anomaly_stream: false,
            anomaly_applayer: true,
            stats: true,
        }
    }
}

impl OutputView {
    pub fn keeps(&self, ev: &Value) -> bool {
        let Some(kind) = ev.get("event_type").and_then(Value::as_str) else {
            return true;
        };
        if let Some(types) = &self.types {
            if !types.iter().any(|t| t == kind) {
                return false;
            }
        }
        match kind {
            "stats" => self.stats,
            "anomaly" => match ev.pointer("/anomaly/type").and_then(Value::as_str) {
                Some("decode") => self.anomaly_decode,
                Some("stream") => self.anomaly_stream,
                Some("applayer") => self.anomaly_applayer,
                _ => true,
            },
            _ => true,
        }
    }
}

/// A Suricata setting Vigil honours: its key (`outputs.eve-log.…` with list indexes dropped;
/// a `*` segment matches any one segment) and what it does to the case's setup. The handler
/// gets the value as text (`true`/`false` for booleans, YAML's `yes`/`no` too) and returns
/// `Err(why)` for a value it cannot honour. Settings without an entry are unsupported: a case
/// that uses one is skipped with "setting not supported: KEY". Add entries as Vigil grows.
pub struct Setting {
    pub key: &'static str,
    pub apply: fn(&mut CaseSetup, &str) -> Result<(), String>,
}

/// Suricata defaults a case may spell out, and settings that cannot change what Vigil writes.
fn only(want: &'static str) -> impl Fn(&str) -> Result<(), String> {
    move |v: &str| {
        if v == want {
            Ok(())
        } else {
            Err(format!("only {want} is supported"))
        }
    }
}

pub const SETTINGS: &[Setting] = &[
    // Command-line options (see `parse_args`).
    Setting {
        // Vigil never drops packets for bad checksums: always `-k none`.
        key: "-k",
        apply: |_, v| only("none")(v),
    },
    Setting {
        key: "--runmode",
        apply: |s, v| {
            only("single")(v)?;
            s.workers = 1;
            Ok(())
        },
    },
    // Pattern-matcher algorithm choices: detection internals, same results.
    Setting {
        key: "mpm-algo",
        apply: |_, _| Ok(()),
    },
    Setting {
        key: "spm-algo",
        apply: |_, _| Ok(()),
    },
    // Flow hash buckets: a Suricata table-internal (collisions must not merge flows, and
    // Vigil's table is keyed by the full flow key whatever its size).
    Setting {
        key: "flow.hash-size",
        apply: |_, _| Ok(()),
    },
    Setting {
        key: "stream.midstream",
        apply: |s, v| {
            s.config.stream.midstream = bool_value(v)?;
            Ok(())
        },
    },
    Setting {
        key: "stream.reassembly.depth",
        apply: |s, v| {
            s.config.stream.depth_bytes = size_value(v)?;
            Ok(())
        },
    },
    // Suricata's default; Vigil never reassembles one side only.
    Setting {
        key: "stream.async-oneside",
        apply: |_, v| only("false")(v),
    },
    Setting {
        key: "app-layer.protocols.http.libhtp.default-config.response-body-decompress-layer-limit",
        apply: |s, v| {
            s.config.app_layer.http.decompress_layer_limit = v
                .parse()
                .ok()
                .filter(|n| *n <= crate::config::MAX_DECOMPRESS_LAYERS)
                .ok_or_else(|| {
                    format!(
                        "{v:?} is not 0 to {} layers",
                        crate::config::MAX_DECOMPRESS_LAYERS
                    )
                })?;
            Ok(())
        },
    },
    // TLS and SSH parsing: switches Vigil has, and Suricata values that describe what Vigil
    // does anyway.
    Setting {
        key: "app-layer.protocols.tls.enabled",
        apply: |s, v| {
            s.config.app_layer.protocols.tls = bool_value(v)?;
            Ok(())
        },
    },
    Setting {
        key: "app-layer.protocols.ssh.enabled",
        apply: |s, v| {
            s.config.app_layer.protocols.ssh = bool_value(v)?;
            Ok(())
        },
    },
    // TLS is detected on any port by its bytes; 443 is the port it is registered for.
    Setting {
        key: "app-layer.protocols.tls.detection-ports.dp",
        apply: |_, v| only("443")(v),
    },
    // JA3 is always computed; `yes` logs it in `tls` events, `auto` logs it when a rule uses it
    // (Vigil's default). `no` would also refuse JA3 rules, which Vigil does not.
    Setting {
        key: "app-layer.protocols.tls.ja3-fingerprints",
        apply: |s, v| match v {
            "true" => {
                s.config.app_layer.tls.ja3 = true;
                Ok(())
            }
            "auto" => Ok(()),
            _ => Err("only yes or auto".into()),
        },
    },
    // JA4 is always computed and logged.
    Setting {
        key: "app-layer.protocols.tls.ja4-fingerprints",
        apply: |_, v| match v {
            "true" | "auto" => Ok(()),
            _ => Err("only yes or auto".into()),
        },
    },
    // Payload rules stop at the end of the handshake, TLS records are still tracked
    // (`track-only`, called `default` before Suricata 7); no bypass, no inspection of
    // encrypted payload.
    Setting {
        key: "app-layer.protocols.tls.encryption-handling",
        apply: |_, v| track_only(v),
    },
    Setting {
        key: "app-layer.protocols.tls.encrypt-handling",
        apply: |_, v| track_only(v),
    },
    // Vigil decodes VXLAN on UDP 4789 always (Suricata's default: enabled).
    Setting {
        key: "decoder.vxlan.enabled",
        apply: |_, v| only("true")(v),
    },
    // Suricata's own log and non-EVE outputs: not what the checks read.
    Setting {
        key: "logging.*",
        apply: |_, _| Ok(()),
    },
    Setting {
        key: "outputs.fast.*",
        apply: |_, _| Ok(()),
    },
    Setting {
        key: "outputs.stats.*",
        apply: |_, _| Ok(()),
    },
    // Stats events: Vigil writes one at the end of a replay; the interval is moot then.
    Setting {
        key: "stats.enabled",
        apply: |s, v| {
            s.view.stats = bool_value(v)?;
            Ok(())
        },
    },
    Setting {
        key: "stats.interval",
        apply: |_, _| Ok(()),
    },
    // eve-log itself.
    Setting {
        key: "outputs.eve-log.enabled",
        apply: |_, v| only("true")(v),
    },
    Setting {
        key: "outputs.eve-log.filetype",
        apply: |_, v| only("regular")(v),
    },
    Setting {
        key: "outputs.eve-log.filename",
        apply: |_, v| only("eve.json")(v),
    },
    Setting {
        // Vigil adds Community ID to every flow event.
        key: "outputs.eve-log.community-id",
        apply: |_, v| only("true")(v),
    },
    Setting {
        key: "outputs.eve-log.community-id-seed",
        apply: |s, v| {
            s.config.flow.community_id_seed = v
                .parse()
                .map_err(|_| format!("{v:?} is not a 16-bit seed"))?;
            Ok(())
        },
    },
    // `types:` list items without options (`- flow`) are handled by `OutputView`; these are
    // the per-type options Vigil honours.
    Setting {
        key: "outputs.eve-log.types.anomaly.enabled",
        apply: |_, v| only("true")(v),
    },
    Setting {
        key: "outputs.eve-log.types.anomaly.types.decode",
        apply: |s, v| {
            s.view.anomaly_decode = bool_value(v)?;
            Ok(())
        },
    },
    Setting {
        key: "outputs.eve-log.types.anomaly.types.stream",
        apply: |s, v| {
            s.view.anomaly_stream = bool_value(v)?;
            Ok(())
        },
    },
    Setting {
        key: "outputs.eve-log.types.anomaly.types.applayer",
        apply: |s, v| {
            s.view.anomaly_applayer = bool_value(v)?;
            Ok(())
        },
    },
    // What alerts carry of their packet.
    Setting {
        key: "outputs.eve-log.types.alert.payload",
        apply: |s, v| {
            s.config.eve.payload = bool_value(v)?;
            Ok(())
        },
    },
    Setting {
        key: "outputs.eve-log.types.alert.payload-printable",
        apply: |s, v| {
            s.config.eve.payload_printable = bool_value(v)?;
            Ok(())
        },
    },
    Setting {
        key: "outputs.eve-log.types.alert.payload-length",
        apply: |s, v| {
            s.config.eve.payload_length = bool_value(v)?;
            Ok(())
        },
    },
    Setting {
        key: "outputs.eve-log.types.alert.packet",
        apply: |s, v| {
            s.config.eve.packet = bool_value(v)?;
            Ok(())
        },
    },
    Setting {
        key: "outputs.eve-log.types.alert.payload-buffer-size",
        apply: |s, v| {
            let n = usize::try_from(size_value(v)?).unwrap_or(usize::MAX);
            if !crate::config::PAYLOAD_BUFFER_SIZES.contains(&n) {
                return Err("only 1 byte to 1 MiB".into());
            }
            s.config.eve.payload_buffer_size = n;
            Ok(())
        },
    },
    // The fields of `tls` events.
    Setting {
        key: "outputs.eve-log.types.tls.enabled",
        apply: |_, v| only("true")(v),
    },
    Setting {
        key: "outputs.eve-log.types.tls.extended",
        apply: |s, v| {
            s.config.app_layer.tls.extended = bool_value(v)?;
            Ok(())
        },
    },
    Setting {
        key: "outputs.eve-log.types.tls.session-resumption",
        apply: |s, v| {
            s.config.app_layer.tls.session_resumption = bool_value(v)?;
            Ok(())
        },
    },
    Setting {
        key: "outputs.eve-log.types.tls.custom",
        apply: |s, v| {
            let names: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect();
            for n in &names {
                vigil_parsers::app::tls::TlsFields::from_name(n)
                    .ok_or_else(|| format!("unknown tls field {n:?}"))?;
            }
            s.config.app_layer.tls.custom = Some(names);
            Ok(())
        },
    },
    // Suricata 8's tls logger reads no `ja4` option (JA4 is logged where the field set has it).
    Setting {
        key: "outputs.eve-log.types.tls.ja4",
        apply: |_, _| Ok(()),
    },
    // Vigil's stats event holds totals over all workers, no deltas.
    Setting {
        key: "outputs.eve-log.types.stats.totals",
        apply: |_, v| only("true")(v),
    },
    Setting {
        key: "outputs.eve-log.types.stats.threads",
        apply: |_, v| only("false")(v),
    },
    Setting {
        key: "outputs.eve-log.types.stats.deltas",
        apply: |_, v| only("false")(v),
    },
];

fn track_only(v: &str) -> Result<(), String> {
    match v {
        "track-only" | "default" => Ok(()),
        _ => Err(
            "only track-only: Vigil neither bypasses a flow after the TLS handshake nor \
             inspects its encrypted payload"
                .into(),
        ),
    }
}

/// A Suricata size: a number with an optional `kb`/`mb`/`gb` unit (binary multiples).
fn size_value(v: &str) -> Result<u64, String> {
    let lower = v.trim().to_ascii_lowercase();
    let (digits, unit) = match lower.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => lower.split_at(i),
        None => (lower.as_str(), ""),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{v:?} is not a size"))?;
    let mult = match unit.trim() {
        "" | "b" => 1,
        "kb" | "kib" => 1 << 10,
        "mb" | "mib" => 1 << 20,
        "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{v:?} is not a size")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{v:?} is too large"))
}

fn bool_value(v: &str) -> Result<bool, String> {
    match v {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("{v:?} is not a boolean")),
    }
}

fn key_matches(pattern: &str, key: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix(".*") {
        return key
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'));
    }
    let (mut p, mut k) = (pattern.split('.'), key.split('.'));
    loop {
        match (p.next(), k.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == "*" || a == b => {}
            _ => return false,
        }
    }
}

impl CaseSetup {
    pub fn new() -> CaseSetup {
        CaseSetup {
            config: Config::default(),
            workers: 1,
            view: OutputView::default(),
            unsupported: Vec::new(),
            unsupported_by_type: BTreeMap::new(),
        }
    }

    /// Applies one Suricata setting through [`SETTINGS`], or records it as unsupported.
    pub fn apply(&mut self, key: &str, value: &str) {
        let key = normalize_key(key);
        let value = match value {
            "yes" | "on" => "true",
            "no" | "off" => "false",
            v => v,
        };
        let why = match SETTINGS.iter().find(|s| key_matches(s.key, &key)) {
            Some(s) => match (s.apply)(self, value) {
                Ok(()) => return,
                Err(why) => format!("{key}={value} ({why})"),
            },
            None => key.clone(),
        };
        match key
            .strip_prefix("outputs.eve-log.types.")
            .and_then(|rest| rest.split_once('.'))
        {
            Some((event_type, _)) => self
                .unsupported_by_type
                .entry(event_type.to_string())
                .or_default()
                .push(why),
            None => self.unsupported.push(why),
        }
    }
}

impl Default for CaseSetup {
    fn default() -> Self {
        CaseSetup::new()
    }
}

/// `outputs.1.eve-log.x` → `outputs.eve-log.x` (list positions differ between configs).
fn normalize_key(key: &str) -> String {
    let parts: Vec<&str> = key.split('.').collect();
    let mut out = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 && p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() {
            continue;
        }
        out.push(*p);
    }
    out.join(".")
}

/// `args:` entries (each split on whitespace, as run.py does).
fn parse_args(args: &[String], setup: &mut CaseSetup) {
    let tokens: Vec<&str> = args.iter().flat_map(|a| a.split_whitespace()).collect();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i];
        i += 1;
        if t == "--set" {
            match tokens.get(i) {
                Some(kv) => {
                    i += 1;
                    match kv.split_once('=') {
                        Some((k, v)) => setup.apply(k, v),
                        None => setup.unsupported.push(format!("--set {kv} (no value)")),
                    }
                }
                None => setup.unsupported.push("--set without a value".into()),
            }
        } else if let Some(kv) = t.strip_prefix("--set=") {
            match kv.split_once('=') {
                Some((k, v)) => setup.apply(k, v),
                None => setup.unsupported.push(format!("--set {kv} (no value)")),
            }
        } else if t == "-k" {
            let v = tokens.get(i).copied().unwrap_or("");
            i += 1;
            setup.apply("-k", v);
        } else if let Some((k, v)) = t.split_once('=').filter(|_| t.starts_with("--")) {
            setup.apply(k, v);
        } else {
            setup.unsupported.push(format!("option {t}"));
        }
    }
}

/// A case's `suricata.yaml`: every leaf setting through [`CaseSetup::apply`], the eve-log
/// `types:` list into the output view.
fn apply_suricata_yaml(doc: &Yaml, setup: &mut CaseSetup) {
    // A case's own suricata.yaml replaces the default one: only what its eve-log lists is
    // logged; without an eve-log output nothing is.
    setup.view.types = Some(Vec::new());
    flatten(doc, "", setup);
}

fn flatten(v: &Yaml, prefix: &str, setup: &mut CaseSetup) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Yaml::Mapping(m) => {
            for (k, v) in m {
                let k = scalar_text(k).unwrap_or_default();
                // `%YAML` documents may `include:` other files; Vigil cannot follow them.
                flatten(v, &join(&k), setup);
            }
        }
        Yaml::Sequence(items) if normalize_key(prefix) == "outputs" => {
            for item in items {
                flatten(item, prefix, setup);
            }
        }
        Yaml::Sequence(items) if normalize_key(prefix) == "outputs.eve-log.types" => {
            for item in items {
                match item {
                    Yaml::Mapping(m) => {
                        for (k, opts) in m {
                            let name = scalar_text(k).unwrap_or_default();
                            push_type(setup, &name);
                            flatten(opts, &join(&name), setup);
                        }
                    }
                    other => {
                        let name = scalar_text(other).unwrap_or_default();
                        push_type(setup, &name);
                    }
                }
            }
        }
        // A list of scalars (`custom: [a, b]`) is one setting, its items joined with commas.
        Yaml::Sequence(items) if items.iter().all(|i| scalar_text(i).is_some()) => {
            let text: Vec<String> = items.iter().filter_map(scalar_text).collect();
            setup.apply(prefix, &text.join(","));
        }
        Yaml::Null => {}
        Yaml::Tagged(t) => flatten(&t.value, prefix, setup),
        other => {
            let text = scalar_text(other).unwrap_or_else(|| yaml_brief(other));
            setup.apply(prefix, text.trim());
        }
    }
}

fn push_type(setup: &mut CaseSetup, name: &str) {
    // Suricata's `files` logger writes `fileinfo` events.
    let name = if name == "files" { "fileinfo" } else { name };
    let types = setup.view.types.get_or_insert_with(Vec::new);
    if !types.iter().any(|t| t == name) {
        types.push(name.to_string());
    }
}

fn scalar_text(v: &Yaml) -> Option<String> {
    match v {
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::String(s) => Some(s.clone()),
        _ => None,
    }
}

static RUN_SEQ: AtomicU64 = AtomicU64::new(0);

/// Runs one case: plan, replay, checks. Never panics on the case's files.
pub fn run_case(name: &str, dir: &Path, keep: Option<&Path>) -> CaseResult {
    let mut result = CaseResult {
        name: name.to_string(),
        outcome: Outcome::Pass,
        evaluated: 0,
        skipped_checks: Vec::new(),
    };
    let test = match load_yaml(&dir.join("test.yaml")) {
        Ok(t) => t,
        Err(e) => {
            result.outcome = Outcome::Fail(vec![e]);
            return result;
        }
    };
    let plan = match plan_case(dir, &test) {
        Ok(Ok(plan)) => plan,
        Ok(Err(skip)) => {
            result.outcome = Outcome::Skip(skip);
            return result;
        }
        Err(fail) => {
            result.outcome = Outcome::Fail(vec![fail]);
            return result;
        }
    };
    let checks = match test.get("checks") {
        None | Some(Yaml::Null) => Vec::new(),
        Some(Yaml::Sequence(c)) => c.clone(),
        Some(_) => {
            result.outcome = Outcome::Fail(vec!["test.yaml: checks is not a list".into()]);
            return result;
        }
    };
    if checks.is_empty() {
        result.outcome = Outcome::Skip("no checks".into());
        return result;
    }

    let (out_dir, temporary) = match keep {
        Some(k) => (k.join(name), false),
        None => (
            std::env::temp_dir().join(format!(
                "vigil-verify-{}-{}",
                std::process::id(),
                RUN_SEQ.fetch_add(1, Ordering::Relaxed)
            )),
            true,
        ),
    };
    let events = replay_case(&plan, &out_dir);
    if temporary {
        let _ = std::fs::remove_dir_all(&out_dir);
    }
    let events = match events {
        Ok(ev) => ev,
        Err(e) => {
            result.outcome = Outcome::Fail(vec![e]);
            return result;
        }
    };
    let visible: Vec<Value> = events
        .into_iter()
        .filter(|e| plan.setup.view.keeps(e))
        .collect();

    let mut failures = Vec::new();
    for (i, check) in checks.iter().enumerate() {
        match evaluate_check_with(check, &visible, &plan.setup.unsupported_by_type) {
            CheckOutcome::Pass => result.evaluated += 1,
            CheckOutcome::Fail(why) => {
                result.evaluated += 1;
                failures.push(format!("check {}: {why}", i + 1));
            }
            CheckOutcome::Skip(why) => result
                .skipped_checks
                .push(format!("check {}: {why}", i + 1)),
        }
    }
    result.outcome = if !failures.is_empty() {
        Outcome::Fail(failures)
    } else if result.evaluated == 0 {
        let mut why: Vec<&str> = result
            .skipped_checks
            .iter()
            .map(|c| c.split_once(": ").map_or(c.as_str(), |(_, w)| w))
            .collect();
        why.sort_unstable();
        why.dedup();
        Outcome::Skip(format!("no check applies: {}", why.join("; ")))
    } else {
        Outcome::Pass
    };
    result
}

fn load_yaml(path: &Path) -> Result<Yaml, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let doc: Yaml = serde_yaml_ng::from_str(&text)
        .map_err(|e| format!("{}: invalid YAML: {e}", path.display()))?;
    Ok(match doc {
        Yaml::Null => Yaml::Mapping(Default::default()),
        d => d,
    })
}

/// `Ok(Ok(plan))` to run, `Ok(Err(reason))` to skip, `Err(message)` for a broken case.
fn plan_case(dir: &Path, test: &Yaml) -> Result<Result<CasePlan, String>, String> {
    if !test.is_mapping() {
        return Err("test.yaml: not a mapping".into());
    }
    for key in ["command", "setup", "pre-check"] {
        if test.get(key).is_some() {
            return Ok(Err(format!("test.yaml `{key}:` is not supported")));
        }
    }
    if let Some(code) = test.get("exit-code").and_then(Yaml::as_i64) {
        if code != 0 {
            return Ok(Err(format!("expects exit code {code}")));
        }
    }
    if let Some(skip) = test_skip(test) {
        return Ok(Err(skip));
    }
    let requires = test.get("requires").cloned().unwrap_or(Yaml::Null);
    if let Err(why) = check_requires(&requires, dir) {
        return Ok(Err(why));
    }

    // The pcap: `pcap:` (false: none), else the single *.pcap / *.pcapng.
    let pcap_required = requires.get("pcap").and_then(Yaml::as_bool).unwrap_or(true);
    let pcap = match test.get("pcap") {
        Some(Yaml::Bool(false)) => None,
        Some(Yaml::String(p)) => {
            let path = dir.join(p);
            if !path.is_file() {
                return Err(format!(
                    "test.yaml names pcap {p}, not found in {}",
                    dir.display()
                ));
            }
            Some(path)
        }
        Some(other) => return Err(format!("test.yaml: pcap {other:?} is not a file name")),
        None => {
            let found = files_with(dir, &["pcap", "pcapng"]);
            match found.len() {
                0 => None,
                1 => found.into_iter().next(),
                n => {
                    return Err(format!(
                        "{n} pcap files in {} and no pcap: key",
                        dir.display()
                    ))
                }
            }
        }
    };
    let Some(pcap) = pcap else {
        return Ok(Err(if pcap_required {
            "no pcap file".into()
        } else {
            "no pcap (pcap: false): nothing to replay".into()
        }));
    };
    let rules = match test.get("rules").and_then(Yaml::as_str) {
        Some(r) => Some(dir.join(r)),
        None => {
            let found = files_with(dir, &["rules"]);
            (found.len() == 1)
                .then(|| found.into_iter().next())
                .flatten()
        }
    };

    let mut setup = CaseSetup::new();
    let yaml = dir.join("suricata.yaml");
    if yaml.is_file() {
        let doc = load_yaml(&yaml)?;
        apply_suricata_yaml(&doc, &mut setup);
    }
    let args: Vec<String> = match test.get("args") {
        None | Some(Yaml::Null) => Vec::new(),
        Some(Yaml::Sequence(a)) => a.iter().filter_map(scalar_text).collect(),
        Some(Yaml::String(s)) => vec![s.clone()],
        Some(_) => return Err("test.yaml: args is not a list".into()),
    };
    parse_args(&args, &mut setup);
    if !setup.unsupported.is_empty() {
        setup.unsupported.sort();
        setup.unsupported.dedup();
        return Ok(Err(format!(
            "setting not supported: {}",
            setup.unsupported.join(", ")
        )));
    }
    Ok(Ok(CasePlan { pcap, rules, setup }))
}

fn files_with(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| exts.iter().any(|e| x == *e)))
        .collect();
    out.sort();
    out
}

fn test_skip(test: &Yaml) -> Option<String> {
    match test.get("skip")? {
        Yaml::Bool(true) => Some("skipped by default (skip: true)".into()),
        Yaml::Sequence(items) => items.iter().find_map(|s| {
            let msg = s.get("msg").and_then(Yaml::as_str);
            let feature = s.get("feature").and_then(Yaml::as_str)?;
            FEATURES
                .contains(&feature)
                .then(|| msg.map_or_else(|| format!("not for feature {feature}"), String::from))
        }),
        _ => None,
    }
}

/// A `requires:` block (test-level or a check's): `Err(reason)` when it does not hold.
fn check_requires(requires: &Yaml, dir: &Path) -> Result<(), String> {
    let Yaml::Mapping(m) = requires else {
        return Ok(());
    };
    for (k, v) in m {
        let key = scalar_text(k).unwrap_or_default();
        let text = scalar_text(v).unwrap_or_default();
        match key.as_str() {
            "min-version" => {
                if SURICATA_VERSION < Version::parse(&text)? {
                    return Err(format!("requires at least version {text}"));
                }
            }
            "lt-version" => {
                if SURICATA_VERSION >= Version::parse(&text)? {
                    return Err(format!("for version less than {text}"));
                }
            }
            "gt-version" => {
                if SURICATA_VERSION <= Version::parse(&text)? {
                    return Err(format!("for version greater than {text}"));
                }
            }
            "version" => {
                if !Version::parse(&text)?.admits(SURICATA_VERSION) {
                    return Err(format!("only for version {text}"));
                }
            }
            "features" => {
                for f in v.as_sequence().into_iter().flatten() {
                    let f = scalar_text(f).unwrap_or_default();
                    if !FEATURES.contains(&f.as_str()) {
                        return Err(format!("requires feature {f}"));
                    }
                }
            }
            "files" => {
                for f in v.as_sequence().into_iter().flatten() {
                    let f = scalar_text(f).unwrap_or_default();
                    if !dir.join(&f).exists() {
                        return Err(format!("requires file {f}"));
                    }
                }
            }
            "env" => {
                for e in v.as_sequence().into_iter().flatten() {
                    let e = scalar_text(e).unwrap_or_default();
                    if std::env::var_os(&e).is_none() {
                        return Err(format!("requires env var {e}"));
                    }
                }
            }
            "os" => {
                if !std::env::consts::OS.starts_with(&text.to_lowercase()) {
                    return Err(format!("only for os {text}"));
                }
            }
            "arch" => {
                if !std::env::consts::ARCH.starts_with(&text.to_lowercase()) {
                    return Err(format!("only for arch {text}"));
                }
            }
            "pcap" => {}
            other => return Err(format!("requires {other}: not supported")),
        }
    }
    Ok(())
}

/// A Suricata version as run.py parses it: missing parts are 0, or wildcards for `version:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

struct VersionPattern(u32, Option<u32>, Option<u32>);

impl Version {
    fn parse(text: &str) -> Result<VersionPattern, String> {
        let mut parts = text.trim().split('.');
        let num = |p: Option<&str>| -> Option<u32> {
            let digits: String = p?.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        };
        let major = num(parts.next()).ok_or_else(|| format!("bad version {text:?}"))?;
        let minor = num(parts.next());
        let patch = minor.and_then(|_| num(parts.next()));
        Ok(VersionPattern(major, minor, patch))
    }
}

impl VersionPattern {
    fn admits(&self, v: Version) -> bool {
        self.0 == v.major
            && self.1.is_none_or(|m| m == v.minor)
            && self.2.is_none_or(|p| p == v.patch)
    }
}

impl PartialEq<VersionPattern> for Version {
    fn eq(&self, o: &VersionPattern) -> bool {
        *self == o.full()
    }
}

impl PartialOrd<VersionPattern> for Version {
    fn partial_cmp(&self, o: &VersionPattern) -> Option<std::cmp::Ordering> {
        Some(self.cmp(&o.full()))
    }
}

impl VersionPattern {
    fn full(&self) -> Version {
        Version {
            major: self.0,
            minor: self.1.unwrap_or(0),
            patch: self.2.unwrap_or(0),
        }
    }
}

fn replay_case(plan: &CasePlan, out_dir: &Path) -> Result<Vec<Value>, String> {
    let eve = out_dir.join("eve.json");
    // The writer appends: a kept folder from an earlier run must not add up.
    match std::fs::remove_file(&eve) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot remove {}: {e}", eve.display())),
    }
    // Rules that do not load are skipped, as Suricata skips them; the case's checks then say
    // whether what loaded is enough.
    let rules = match &plan.rules {
        Some(path) => Some(
            crate::detect::load_rules(std::slice::from_ref(path), &plan.setup.config.rules, None)
                .map_err(|e| format!("loading rules: {e}"))?
                .0,
        ),
        None => None,
    };
    let report = replay(ReplayOptions {
        files: vec![plan.pcap.clone()],
        config: {
            // The cases' expected events are Suricata's, which has no anomaly models.
            let mut config = plan.setup.config.clone();
            config.anomaly.enabled = false;
            config
        },
        workers: plan.setup.workers,
        eve_dir: out_dir.to_path_buf(),
        rules,
        outputs: Vec::new(),
        respond_dry_run: false,
        progress: None,
    })
    .map_err(|e| format!("replay of {} failed: {e}", plan.pcap.display()))?;
    let text = std::fs::read_to_string(&report.eve_path)
        .map_err(|e| format!("cannot read {}: {e}", report.eve_path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                format!(
                    "{} line {}: bad JSON: {e}",
                    report.eve_path.display(),
                    i + 1
                )
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Checks.

#[derive(Debug, Clone, PartialEq)]
pub enum CheckOutcome {
    Pass,
    Fail(String),
    Skip(String),
}

/// One item of `checks:` against the events the case's output config would have written.
pub fn evaluate_check(check: &Yaml, events: &[Value]) -> CheckOutcome {
    evaluate_check_with(check, events, &BTreeMap::new())
}

/// Same, with per-event-type settings Vigil cannot honour: checks that depend on them skip.
pub fn evaluate_check_with(
    check: &Yaml,
    events: &[Value],
    unsupported_by_type: &BTreeMap<String, Vec<String>>,
) -> CheckOutcome {
    let Yaml::Mapping(m) = check else {
        return CheckOutcome::Fail(format!("check is not a mapping: {}", yaml_brief(check)));
    };
    let mut outcome = CheckOutcome::Skip("empty check".into());
    for (k, body) in m {
        let kind = scalar_text(k).unwrap_or_default();
        let one = match kind.as_str() {
            "filter" => match tainted(filter_event_type(body), unsupported_by_type) {
                Some(why) => CheckOutcome::Skip(why),
                None => evaluate_filter(body, events),
            },
            "stats" => match tainted(Some("stats"), unsupported_by_type) {
                Some(why) => CheckOutcome::Skip(why),
                None => evaluate_stats(body, events),
            },
            "shell" => CheckOutcome::Skip("shell check not supported".into()),
            "file-compare" => CheckOutcome::Skip("file-compare check not supported".into()),
            other => CheckOutcome::Skip(format!("{other} check not supported")),
        };
        // Several kinds in one item: any failure fails it; it passes if one was evaluated.
        outcome = match (outcome, one) {
            (CheckOutcome::Fail(a), _) => CheckOutcome::Fail(a),
            (_, CheckOutcome::Fail(b)) => CheckOutcome::Fail(b),
            (CheckOutcome::Pass, _) | (_, CheckOutcome::Pass) => CheckOutcome::Pass,
            (_, skip) => skip,
        };
    }
    outcome
}

/// The event type a filter selects (`match: event_type:`).
fn filter_event_type(filter: &Yaml) -> Option<&str> {
    filter.get("match")?.get("event_type")?.as_str()
}

/// Why a check on `event_type` (`None`: any type) depends on an unsupported setting.
fn tainted(event_type: Option<&str>, by_type: &BTreeMap<String, Vec<String>>) -> Option<String> {
    let keys: Vec<&str> = match event_type {
        Some(t) => by_type.get(t)?.iter().map(String::as_str).collect(),
        None => by_type.values().flatten().map(String::as_str).collect(),
    };
    (!keys.is_empty()).then(|| format!("setting not supported: {}", keys.join(", ")))
}

/// A `filter:` check: exactly `count` events match every `match` entry.
pub fn evaluate_filter(filter: &Yaml, events: &[Value]) -> CheckOutcome {
    let Yaml::Mapping(_) = filter else {
        return CheckOutcome::Fail("filter is not a mapping".into());
    };
    let mut requires = match filter.get("requires") {
        Some(Yaml::Mapping(r)) => r.clone(),
        _ => Default::default(),
    };
    for key in ["version", "min-version", "lt-version"] {
        if let Some(v) = filter.get(key) {
            requires.insert(Yaml::String(key.into()), v.clone());
        }
    }
    if let Some(f) = filter.get("feature") {
        requires.insert(
            Yaml::String("features".into()),
            Yaml::Sequence(vec![f.clone()]),
        );
    }
    if let Err(why) = check_requires(&Yaml::Mapping(requires), Path::new(".")) {
        return CheckOutcome::Skip(why);
    }
    if let Some(f) = filter.get("filename").and_then(Yaml::as_str) {
        if f != "eve.json" {
            return CheckOutcome::Skip(format!("filename {f}: Vigil writes only eve.json"));
        }
    }
    let Some(count) = filter.get("count").and_then(Yaml::as_u64) else {
        return CheckOutcome::Fail("filter without a count".into());
    };
    let entries = match match_entries(filter.get("match")) {
        Ok(e) => e,
        Err(e) => return CheckOutcome::Fail(e),
    };
    let mut got = 0u64;
    for ev in events {
        match event_matches(ev, &entries) {
            Ok(true) => got += 1,
            Ok(false) => {}
            Err(e) => return CheckOutcome::Fail(format!("{}: {e}", summarize(&entries))),
        }
    }
    if got == count {
        CheckOutcome::Pass
    } else {
        CheckOutcome::Fail(format!("{} (want {count}, got {got})", summarize(&entries)))
    }
}

/// A filter's `match:` as ordered (key, value) pairs (order matters as in run.py: the first
/// entry that does not hold ends the comparison before a later one can raise a type error).
pub fn match_entries(m: Option<&Yaml>) -> Result<Vec<(String, Value)>, String> {
    let Some(Yaml::Mapping(m)) = m else {
        return Err("filter without a match mapping".into());
    };
    m.iter()
        .map(|(k, v)| {
            let key = scalar_text(k).ok_or_else(|| format!("match key {k:?} is not text"))?;
            Ok((key, yaml_to_json(v)?))
        })
        .collect()
}

fn summarize(entries: &[(String, Value)]) -> String {
    let mut s = String::from("filter {");
    for (i, (k, v)) in entries.iter().enumerate() {
        let _ = write!(s, "{}{k}: {v}", if i > 0 { ", " } else { "" });
    }
    s.push('}');
    if s.len() > 300 {
        let mut cut = 300;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("…}");
    }
    s
}

fn yaml_brief(v: &Yaml) -> String {
    serde_yaml_ng::to_string(v)
        .unwrap_or_default()
        .replace('\n', " ")
}

pub fn yaml_to_json(v: &Yaml) -> Result<Value, String> {
    Ok(match v {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| format!("number {n} has no JSON form"))?
            }
        }
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Sequence(items) => {
            Value::Array(items.iter().map(yaml_to_json).collect::<Result<_, _>>()?)
        }
        Yaml::Mapping(m) => {
            let mut o = serde_json::Map::new();
            for (k, v) in m {
                let k = scalar_text(k).ok_or_else(|| format!("mapping key {k:?} is not text"))?;
                o.insert(k, yaml_to_json(v)?);
            }
            Value::Object(o)
        }
        Yaml::Tagged(t) => yaml_to_json(&t.value)?,
    })
}

/// A `stats:` check: each dotted key equals its value in the last stats event.
pub fn evaluate_stats(body: &Yaml, events: &[Value]) -> CheckOutcome {
    let entries = match match_entries(Some(body)) {
        Ok(e) => e,
        Err(_) => return CheckOutcome::Fail("stats check is not a mapping".into()),
    };
    let Some(stats) = events
        .iter()
        .rev()
        .find(|e| e.get("event_type").and_then(Value::as_str) == Some("stats"))
        .and_then(|e| e.get("stats"))
    else {
        return CheckOutcome::Fail("stats check: no stats event in eve.json".into());
    };
    for (key, want) in &entries {
        let got = match find_value(key, stats) {
            Ok(v) => v.into_value(),
            Err(e) => return CheckOutcome::Fail(format!("stats.{key}: {e}")),
        };
        if !py_eq(&got, want) {
            return CheckOutcome::Fail(format!("stats.{key} (want {want}, got {got})"));
        }
    }
    CheckOutcome::Pass
}

/// What a dotted path names in an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Found<'a> {
    /// Absent, or JSON `null` (Python's `None` either way).
    Missing,
    Ref(&'a Value),
    Owned(Value),
}

impl Found<'_> {
    pub fn into_value(self) -> Value {
        match self {
            Found::Missing => Value::Null,
            Found::Ref(v) => v.clone(),
            Found::Owned(v) => v,
        }
    }

    fn value(&self) -> Option<&Value> {
        match self {
            Found::Missing => None,
            Found::Ref(v) => Some(v),
            Found::Owned(v) => Some(v),
        }
    }
}

const OPERATORS: &[&str] = &[
    "__find",
    "__contains",
    "__startswith",
    "__endswith",
    "__gt",
    "__gte",
    "__lt",
    "__lte",
];

/// run.py's `find_value`: `a.b[2].c`, `x.__len` (length, -1 for a value without one), and an
/// operator suffix ends the walk (the caller applies it to what was reached). `Err` is where
/// Python would raise (indexing into a number, `null` or text by name).
pub fn find_value<'a>(path: &str, event: &'a Value) -> Result<Found<'a>, String> {
    let mut cur: Found<'a> = Found::Ref(event);
    for part in path.split('.') {
        if part == "__len" {
            let n = match cur.value() {
                Some(Value::String(s)) => s.chars().count() as i64,
                Some(Value::Array(a)) => a.len() as i64,
                Some(Value::Object(o)) => o.len() as i64,
                _ => -1,
            };
            return Ok(Found::Owned(Value::from(n)));
        }
        if OPERATORS.contains(&part) {
            break;
        }
        let (name, index) = split_index(part);
        let obj = match &cur {
            Found::Ref(v) => *v,
            _ => return Err(format!("{path}: cannot look up {name:?} in null")),
        };
        cur = match obj {
            Value::Object(o) => match o.get(name) {
                Some(v) => Found::Ref(v),
                None => return Ok(Found::Missing),
            },
            Value::Array(a) => {
                if a.iter().any(|x| x.as_str() == Some(name)) {
                    return Err(format!("{path}: cannot look up {name:?} in a list"));
                }
                return Ok(Found::Missing);
            }
            Value::String(s) => {
                if s.contains(name) {
                    return Err(format!("{path}: cannot look up {name:?} in text"));
                }
                return Ok(Found::Missing);
            }
            other => {
                return Err(format!("{path}: cannot look up {name:?} in {other}"));
            }
        };
        if let Some(i) = index {
            cur = match &cur {
                Found::Ref(Value::Array(a)) => match a.get(i) {
                    Some(v) => Found::Ref(v),
                    None => return Ok(Found::Missing),
                },
                Found::Ref(Value::String(s)) => match s.chars().nth(i) {
                    Some(c) => Found::Owned(Value::String(c.to_string())),
                    None => return Ok(Found::Missing),
                },
                _ => return Ok(Found::Missing),
            };
        }
    }
    Ok(match cur {
        Found::Ref(Value::Null) => Found::Missing,
        c => c,
    })
}

/// `name[3]` → ("name", Some(3)); only a trailing index, as run.py's pattern.
fn split_index(part: &str) -> (&str, Option<usize>) {
    if let Some(body) = part.strip_suffix(']') {
        if let Some(open) = body.rfind('[') {
            let digits = &body[open + 1..];
            if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
                if let Ok(i) = digits.parse() {
                    return (&body[..open], Some(i));
                }
            }
        }
    }
    (part, None)
}

/// Whether `ev` satisfies every entry, in order; `Err` where run.py would raise.
pub fn event_matches(ev: &Value, entries: &[(String, Value)]) -> Result<bool, String> {
    for (key, want) in entries {
        if key == "has-key" || key == "not-has-key" {
            // One path or a list of them (current run.py), each present (or each absent).
            let paths = match want {
                Value::Array(items) => items.iter().collect(),
                one => vec![one],
            };
            for p in paths {
                let path = p
                    .as_str()
                    .ok_or_else(|| format!("{key}: {p} is not a path"))?;
                let present = find_value(path, ev)? != Found::Missing;
                if present != (key == "has-key") {
                    return Ok(false);
                }
            }
            continue;
        }
        let found = find_value(key, ev)?;
        let op = OPERATORS
            .iter()
            .find(|op| key.ends_with(*op) && key[..key.len() - op.len()].ends_with('.'));
        let holds = match op {
            None => py_eq(found.value().unwrap_or(&Value::Null), want),
            Some(op) => apply_operator(key, op, found.value(), want)?,
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}

fn apply_operator(key: &str, op: &str, got: Option<&Value>, want: &Value) -> Result<bool, String> {
    let type_error = |what: &str| {
        Err(format!(
            "{key}: {op} on {} with {want}: {what}",
            got.map_or_else(|| "null".to_string(), Value::to_string)
        ))
    };
    match op {
        "__find" | "__startswith" | "__endswith" => {
            let (Some(Value::String(s)), Value::String(w)) = (got, want) else {
                return type_error("needs text on both sides");
            };
            Ok(match op {
                "__find" => s.contains(w.as_str()),
                "__startswith" => s.starts_with(w.as_str()),
                _ => s.ends_with(w.as_str()),
            })
        }
        "__contains" => match got {
            Some(Value::String(s)) => match want {
                Value::String(w) => Ok(s.contains(w.as_str())),
                _ => type_error("text can only contain text"),
            },
            Some(Value::Array(a)) => Ok(a.iter().any(|x| py_eq(x, want))),
            Some(Value::Object(o)) => match want {
                Value::String(w) => Ok(o.contains_key(w)),
                Value::Array(_) | Value::Object(_) => type_error("unhashable key"),
                _ => Ok(false),
            },
            _ => type_error("not a container"),
        },
        _ => {
            let ord = match (got, want) {
                (Some(Value::Number(a)), Value::Number(b)) => {
                    num_cmp(a, b).ok_or_else(|| format!("{key}: cannot compare {a} with {b}"))?
                }
                (Some(Value::String(a)), Value::String(b)) => a.as_str().cmp(b.as_str()),
                _ => return type_error("needs two numbers or two texts"),
            };
            use std::cmp::Ordering::*;
            Ok(match op {
                "__gt" => ord == Greater,
                "__gte" => ord != Less,
                "__lt" => ord == Less,
                _ => ord != Greater,
            })
        }
    }
}

fn num_cmp(a: &serde_json::Number, b: &serde_json::Number) -> Option<std::cmp::Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    // Mixed signs beyond i64, or a float: compare as reals.
    if a.is_u64() && b.as_i64().is_some_and(|y| y < 0) {
        return Some(std::cmp::Ordering::Greater);
    }
    if b.is_u64() && a.as_i64().is_some_and(|x| x < 0) {
        return Some(std::cmp::Ordering::Less);
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// Python `==` between JSON values as `json.loads` and `yaml.safe_load` produce them: numbers
/// by value (1 == 1.0), no coercion between text, numbers and booleans (1 != "1", true != 1;
/// stricter than Python, where True == 1), containers element by element.
pub fn py_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Some(std::cmp::Ordering::Equal),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| py_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_gates_follow_run_py() {
        let req = |s: &str| serde_yaml_ng::from_str::<Yaml>(s).unwrap();
        let ok = |s: &str| check_requires(&req(s), Path::new(".")).is_ok();
        assert!(ok("min-version: 8"));
        assert!(ok("min-version: 8.0.5"));
        assert!(ok("min-version: 7.0.12"));
        assert!(!ok("min-version: 9"));
        assert!(!ok("min-version: 8.1"));
        assert!(!ok("lt-version: 8"));
        assert!(ok("lt-version: 9"));
        assert!(ok("version: 8"));
        assert!(ok("version: 8.0"));
        assert!(!ok("version: 7"));
        assert!(ok("features: [HAVE_JA3, HAVE_JA4]"));
        assert!(!ok("features: [HAVE_LUA]"));
    }

    #[test]
    fn settings_table() {
        let mut s = CaseSetup::new();
        parse_args(
            &[
                "-k none".into(),
                "--runmode=single".into(),
                "--set outputs.1.eve-log.community-id-seed=7".into(),
            ],
            &mut s,
        );
        assert!(s.unsupported.is_empty(), "{:?}", s.unsupported);
        assert_eq!(s.config.flow.community_id_seed, 7);
        parse_args(&["--set stream.reassembly.depth=1mb".into()], &mut s);
        assert_eq!(s.config.stream.depth_bytes, 1 << 20);
        parse_args(&["--set stream.inline=true -k all".into()], &mut s);
        assert_eq!(
            s.unsupported,
            vec!["stream.inline", "-k=all (only none is supported)"]
        );
    }

    #[test]
    fn suricata_yaml_sets_the_output_view() {
        let doc: Yaml = serde_yaml_ng::from_str(
            "%YAML 1.1\n---\noutputs:\n  - eve-log:\n      enabled: yes\n      types:\n        - flow\n        - anomaly:\n            types:\n              decode: yes\n",
        )
        .unwrap();
        let mut s = CaseSetup::new();
        apply_suricata_yaml(&doc, &mut s);
        assert!(s.unsupported.is_empty(), "{:?}", s.unsupported);
        assert_eq!(
            s.view.types,
            Some(vec!["flow".to_string(), "anomaly".to_string()])
        );
        assert!(s.view.anomaly_decode);
        let stats = serde_json::json!({"event_type": "stats"});
        assert!(!s.view.keeps(&stats));
        let decode = serde_json::json!({"event_type": "anomaly", "anomaly": {"type": "decode"}});
        assert!(s.view.keeps(&decode));
        assert!(!OutputView::default().keeps(&decode));
    }
}
