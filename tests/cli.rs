//! End to end: the `vigil` command line and configuration-file handling, through the real binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{assert_no_crash, vigil};
use vigil_pcapgen::GenConfig;

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("vigil-cli-")
        .tempdir()
        .expect("temp dir")
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit status `code`, and no panic.
fn assert_exit(o: &Output, code: i32, what: &str) {
    assert_no_crash(&o.status, &stderr(o));
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: exit status\nstdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

/// `vigil config check` on a file holding `text`; returns the output after checking it failed
/// with exit status 2 and a `vigil: error: PATH:LINE:COLUMN: ` message containing `needle`.
fn check_fails_at(dir: &Path, name: &str, text: &str, line: usize, col: usize, needle: &str) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let out = vigil(["config".as_ref(), "check".as_ref(), path.as_os_str()]);
    assert_exit(&out, 2, name);
    let err = stderr(&out);
    let location = format!("vigil: error: {}:{line}:{col}: ", path.display());
    assert!(
        err.contains(&location),
        "{name}: expected `{location}` in: {err}"
    );
    assert!(
        err.contains(needle),
        "{name}: expected `{needle}` in: {err}"
    );
    assert!(stdout(&out).is_empty(), "{name}: no OK on stdout");
}

#[test]
fn config_check_accepts_the_bundled_config() {
    let path = manifest_dir().join("appliance/vigil.toml");
    let out = vigil(["config".as_ref(), "check".as_ref(), path.as_os_str()]);
    assert_exit(&out, 0, "appliance/vigil.toml");
    assert_eq!(stdout(&out).trim(), format!("{}: OK", path.display()));

    // Relative to the working directory too, as an operator types it.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.current_dir(manifest_dir())
        .args(["config", "check", "appliance/vigil.toml"]);
    let out = common::run_with_deadline(cmd, std::time::Duration::from_secs(30));
    assert_exit(&out, 0, "relative path");
    assert_eq!(stdout(&out).trim(), "appliance/vigil.toml: OK");
}

#[test]
fn config_check_names_line_and_key_of_an_unknown_key() {
    let dir = tempdir();
    check_fails_at(
        dir.path(),
        "unknown.toml",
        "[pipeline]\nworkers = 2\nbatch_pakets = 10\n",
        3,
        1,
        "batch_pakets",
    );
    // Indented, in a nested table.
    check_fails_at(
        dir.path(),
        "nested.toml",
        "# timeouts\n[flow.timeouts.udp]\nnew = 30\n  establishd = 60\n",
        4,
        3,
        "establishd",
    );
    // An unknown section.
    check_fails_at(
        dir.path(),
        "section.toml",
        "[pipeline]\nworkers = 1\n\n[outputs]\ndir = \"/tmp\"\n",
        4,
        2,
        "outputs",
    );
}

#[test]
fn config_check_names_line_and_column_of_a_bad_value() {
    let dir = tempdir();
    // The column is the value's.
    check_fails_at(
        dir.path(),
        "type.toml",
        "[flow]\nmemcap_bytes = \"lots\"\n",
        2,
        16,
        "string",
    );
    check_fails_at(
        dir.path(),
        "bool.toml",
        "[pipeline]\nworkers = 2\n\n[flow]\n   community_id_seed = true\n",
        5,
        24,
        "boolean",
    );
    // Too large for the field's type.
    check_fails_at(
        dir.path(),
        "range-type.toml",
        "[flow]\ncommunity_id_seed = 70000\n",
        2,
        21,
        "70000",
    );
    // Range checks beyond the type are reported at the key.
    check_fails_at(
        dir.path(),
        "range.toml",
        "[pipeline]\n\n  batch_packets = 0\n",
        3,
        3,
        "batch_packets must be 1..=65536",
    );
    check_fails_at(
        dir.path(),
        "workers.toml",
        "[pipeline]\nworkers = 5000\n",
        2,
        1,
        "workers must be",
    );
    // Not TOML at all.
    check_fails_at(
        dir.path(),
        "syntax.toml",
        "[pipeline]\nworkers = = 2\n",
        2,
        11,
        "",
    );
}

#[test]
fn config_check_of_a_missing_file_names_it() {
    let dir = tempdir();
    let path = dir.path().join("nope.toml");
    let out = vigil(["config".as_ref(), "check".as_ref(), path.as_os_str()]);
    assert_exit(&out, 2, "missing config");
    let expected = format!("{}: No such file or directory", path.display());
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
}

#[test]
fn replay_refuses_to_start_with_a_bad_config() {
    let dir = tempdir();
    let pcap = dir.path().join("small.pcap");
    common::generate(&pcap, &GenConfig::new(3, 64 << 10));
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[pipeline]\nworkers = 2\nbatch_pakets = 10\n").unwrap();
    let check = vigil(["config".as_ref(), "check".as_ref(), config.as_os_str()]);
    assert_exit(&check, 2, "config check");

    let eve = dir.path().join("eve");
    let out = vigil([
        "replay".as_ref(),
        pcap.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
        "--eve-dir".as_ref(),
        eve.as_os_str(),
    ]);
    assert_exit(&out, 2, "replay with a bad config");
    assert_eq!(
        stderr(&out),
        stderr(&check),
        "the same message as `config check`"
    );
    assert!(
        stderr(&out).contains(&format!("{}:3:1: ", config.display())),
        "{}",
        stderr(&out)
    );
    assert!(!eve.exists(), "nothing written before refusing");

    // And a good config lets it run.
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[pipeline]\nworkers = 2\n").unwrap();
    let out = vigil([
        "replay".as_ref(),
        pcap.as_os_str(),
        "--config".as_ref(),
        good.as_os_str(),
        "--eve-dir".as_ref(),
        eve.as_os_str(),
    ]);
    assert_exit(&out, 0, "replay with a good config");
    assert!(stderr(&out).contains("2 workers"), "{}", stderr(&out));
    assert!(eve.join("eve.json").exists());
}

#[test]
fn config_defaults_parse_back() {
    let dir = tempdir();
    let out = vigil(["config", "defaults"]);
    assert_exit(&out, 0, "config defaults");
    let text = stdout(&out);
    for section in [
        "[pipeline]",
        "[flow]",
        "[flow.timeouts.tcp]",
        "[defrag]",
        "[eve]",
        "[anomaly_events]",
    ] {
        assert!(text.contains(section), "{section} in:\n{text}");
    }
    let path = dir.path().join("defaults.toml");
    std::fs::write(&path, &text).unwrap();
    let check = vigil(["config".as_ref(), "check".as_ref(), path.as_os_str()]);
    assert_exit(&check, 0, "config check of the defaults");
    assert!(stdout(&check).contains("OK"));

    // The defaults are what the bundled config spells out (apart from its event directory).
    let mut defaults: toml::Table = text.parse().unwrap();
    let mut bundled: toml::Table =
        std::fs::read_to_string(manifest_dir().join("appliance/vigil.toml"))
            .unwrap()
            .parse()
            .unwrap();
    defaults.remove("eve");
    bundled.remove("eve");
    assert_eq!(defaults, bundled);
}

#[test]
fn help_and_version_work() {
    let out = vigil(["--help"]);
    assert_exit(&out, 0, "--help");
    let text = stdout(&out);
    for word in ["Usage", "replay", "config"] {
        assert!(text.contains(word), "{word} in --help:\n{text}");
    }
    let out = vigil(["replay", "--help"]);
    assert_exit(&out, 0, "replay --help");
    let text = stdout(&out);
    for word in [
        "Usage",
        "--workers",
        "--eve-dir",
        "--config",
        "--progress",
        "--quiet",
    ] {
        assert!(text.contains(word), "{word} in replay --help:\n{text}");
    }
    let out = vigil(["config", "--help"]);
    assert_exit(&out, 0, "config --help");
    assert!(stdout(&out).contains("check") && stdout(&out).contains("defaults"));
    let out = vigil(["--version"]);
    assert_exit(&out, 0, "--version");
    assert!(stdout(&out).starts_with("vigil "), "{}", stdout(&out));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["replay"][..],
        &["frobnicate"][..],
        &["config"][..],
        &["replay", "x.pcap", "--workers", "many"][..],
        &["replay", "x.pcap", "--workers", "-1"][..],
        &["replay", "x.pcap", "--progress", "sometimes"][..],
    ] {
        let out = vigil(args);
        assert_exit(&out, 2, &format!("{args:?}"));
        assert!(
            stderr(&out).contains("Usage") || stderr(&out).contains("error:"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn zero_workers_is_refused() {
    let dir = tempdir();
    let pcap = dir.path().join("small.pcap");
    common::generate(&pcap, &GenConfig::new(4, 64 << 10));
    let eve = dir.path().join("eve");
    let out = vigil([
        "replay".as_ref(),
        pcap.as_os_str(),
        "--workers".as_ref(),
        "0".as_ref(),
        "--eve-dir".as_ref(),
        eve.as_os_str(),
    ]);
    assert_exit(&out, 2, "--workers 0");
    assert!(
        stderr(&out).contains("--workers must be at least 1"),
        "{}",
        stderr(&out)
    );
    assert!(!eve.exists(), "nothing written before refusing");

    // Nor more than the configuration file allows (100 000 threads used to abort the process).
    let out = vigil([
        "replay".as_ref(),
        pcap.as_os_str(),
        "--workers".as_ref(),
        "100000".as_ref(),
        "--eve-dir".as_ref(),
        eve.as_os_str(),
    ]);
    assert_exit(&out, 2, "--workers 100000");
    assert!(stderr(&out).contains("at most 1024"), "{}", stderr(&out));
    assert!(!eve.exists(), "nothing written before refusing");
}

/// An OS error appears once in the message, not once per level of the error chain (the
/// output-side case is checked in `unwritable_event_directory_is_a_clear_error`).
#[test]
fn os_errors_are_printed_once() {
    let dir = tempdir();
    let missing = dir.path().join("nope.toml");
    let out = vigil(["config".as_ref(), "check".as_ref(), missing.as_os_str()]);
    assert_exit(&out, 2, "missing config");
    assert_eq!(
        stderr(&out).matches("No such file or directory").count(),
        1,
        "{}",
        stderr(&out)
    );
}

#[test]
fn unwritable_event_directory_is_a_clear_error() {
    let dir = tempdir();
    let pcap = dir.path().join("small.pcap");
    common::generate(&pcap, &GenConfig::new(5, 64 << 10));
    // A regular file where the directory should be.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let out = vigil([
        "replay".as_ref(),
        pcap.as_os_str(),
        "--eve-dir".as_ref(),
        blocker.join("eve").as_os_str(),
    ]);
    assert_exit(&out, 2, "eve dir under a file");
    let err = stderr(&out);
    assert!(
        err.contains(&blocker.join("eve").display().to_string()),
        "names the directory: {err}"
    );
    assert_eq!(
        err.matches("Not a directory").count(),
        1,
        "OS error once: {err}"
    );
}
