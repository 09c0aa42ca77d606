//! The `vigil` command line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use vigil::config::Config;
use vigil::replay::{replay, ReplayOptions, ReplayReport};

/// Per-flow parser state and EVE events are allocated on the workers and freed on the output
/// thread; with glibc malloc that cross-thread traffic cost ~15 % of a replay's CPU time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Network sensor for managed detection and response"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay pcap/pcapng files through the sensor and write EVE JSON events.
    Replay(ReplayArgs),
    /// Run the sensor on live interfaces until SIGTERM/SIGINT (SIGHUP reloads rules and config).
    Run(RunArgs),
    /// List network interfaces Vigil can capture on.
    Interfaces,
    /// Run suricata-verify cases and check Vigil's output against their expectations.
    Verify(VerifyArgs),
    /// Rules file tools.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Configuration file tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Block an address in the running daemon's firewall (active response).
    Block {
        addr: std::net::IpAddr,
        /// How long: 90s, 15m, 1h, 2d.
        #[arg(long = "for", default_value = "1h", value_name = "DURATION")]
        duration: vigil::response::policy::HumanDuration,
        /// Why, for the log and the `response` event.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Lift a block.
    Unblock {
        addr: std::net::IpAddr,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// List the active blocks.
    Blocks {
        /// One JSON object per block instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        control: ControlArgs,
    },
}

/// Where the running daemon's control socket is.
#[derive(clap::Args)]
struct ControlArgs {
    /// The control socket (default: the config's `response.control_socket`).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// The daemon's configuration file, for its socket path.
    #[arg(short, long)]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RespondArg {
    /// Act: resets, blocks, webhook.
    On,
    /// Log what would be done (EVE `response` events); change nothing.
    DryRun,
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// Capture files (classic pcap or pcapng), read in order as one stream.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Configuration file (TOML); defaults apply without one.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Worker threads (default: the config's, which defaults to one per core).
    #[arg(short, long)]
    workers: Option<usize>,
    /// Directory for eve.json (default: the config's `eve.dir`).
    #[arg(short = 'l', long)]
    eve_dir: Option<PathBuf>,
    /// Rules file (Suricata syntax); repeat for several. Without one, no detection runs.
    #[arg(short = 'S', long = "rules", value_name = "FILE")]
    rules: Vec<PathBuf>,
    /// Build the prefilter databases every time instead of caching them on disk.
    #[arg(long)]
    no_rules_cache: bool,
    /// Where events go besides the config's: `file:DIR`,
    /// `syslog+tls://HOST:PORT?ca=FILE&cert=FILE&key=FILE`,
    /// `nats://HOST:PORT/PREFIX?stream=NAME&creds=FILE`; repeat for several.
    #[arg(long = "output", value_name = "URL")]
    outputs: Vec<String>,
    /// Active response in dry-run: log as EVE `response` events what a live sensor with this
    /// config's `[response]` policy would do (replay never acts).
    #[arg(long, value_enum, value_name = "MODE")]
    respond: Option<RespondArg>,
    /// Write alerts per rule (gid, sid, rev, msg, count) as JSON to FILE at the end of the run.
    #[arg(long, value_name = "FILE")]
    rule_stats: Option<PathBuf>,
    /// Progress bar on stderr.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    progress: Progress,
    /// No summary on stderr.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Configuration file (TOML), re-read on SIGHUP; defaults apply without one.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Interface to capture on; repeat for several (replaces the config's list).
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    interfaces: Vec<String>,
    /// Capture method (default: the config's, af-packet).
    #[arg(long, value_enum)]
    capture: Option<CaptureArg>,
    /// Worker threads (default: the config's, which defaults to one per core).
    #[arg(short, long)]
    workers: Option<usize>,
    /// Rules file; repeat for several (replaces the config's list, also on reload).
    #[arg(short = 'S', long = "rules", value_name = "FILE")]
    rules: Vec<PathBuf>,
    /// Directory for eve.json (default: the config's `eve.dir`).
    #[arg(short = 'l', long)]
    eve_dir: Option<PathBuf>,
    /// Keep alerts per rule (gid, sid, rev, msg, count) as JSON in FILE, rewritten with every
    /// EVE stats event and at exit.
    #[arg(long, value_name = "FILE")]
    rule_stats: Option<PathBuf>,
    /// Serve Prometheus metrics on ADDRESS:PORT, "" for none (default: the config's
    /// `metrics.listen`).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<String>,
    /// Kernel capture filter (libpcap syntax).
    #[arg(long, value_name = "FILTER")]
    bpf: Option<String>,
    /// Switch to this user once capture is open (default: the config's `daemon.user`).
    #[arg(long)]
    user: Option<String>,
    /// Build the prefilter databases every time instead of caching them on disk.
    #[arg(long)]
    no_rules_cache: bool,
    /// Where events go besides the config's: `file:DIR`, `syslog+tls://…`, `nats://…`
    /// (as for `replay`); repeat for several.
    #[arg(long = "output", value_name = "URL")]
    outputs: Vec<String>,
    /// Active response (resets, blocks) under the config's `[response]` policy; `dry-run` only
    /// logs (default: the config's `response.enabled` and `response.dry_run`).
    #[arg(long, value_enum, value_name = "MODE", num_args = 0..=1, default_missing_value = "on")]
    respond: Option<RespondArg>,
    /// Interface resets leave through (default: `response.inject_iface`, else the capture
    /// interface).
    #[arg(long, value_name = "IFACE")]
    inject_iface: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum CaptureArg {
    AfXdp,
    AfPacket,
    Pcap,
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// Folders holding suricata-verify cases (a folder with test.yaml; cases nest).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Keep each case's output in OUT/<case name>/eve.json.
    #[arg(long, value_name = "OUT")]
    keep: Option<PathBuf>,
    /// Only cases whose name contains SUBSTR.
    #[arg(long, value_name = "SUBSTR")]
    filter: Option<String>,
    /// Known failures and skips (case<TAB>fail|skip<TAB>reason); exit 0 when they explain all.
    #[arg(long, value_name = "FILE")]
    expectations: Option<PathBuf>,
    /// Print only what the expectations do not explain, and the summary.
    #[arg(short, long)]
    quiet: bool,
    /// Also print skipped cases and every failing check.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Progress {
    /// On when stderr is a terminal.
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Load rules files and report what loads, what is skipped and why.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Configuration file whose `[rules]` variables and support files apply.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Any skipped rule is an error (exit status 1).
        #[arg(long)]
        strict: bool,
        /// Print only the counts, not each skipped rule.
        #[arg(short, long)]
        quiet: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a configuration file; prints the first error with file, line and column.
    Check { file: PathBuf },
    /// Print every setting with its default value.
    Defaults,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon says what it does; one-shot commands only warn.
    let default_level = match cli.command {
        Command::Run(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Replay(args) => run_replay(args),
        Command::Run(args) => run_daemon(args),
        Command::Interfaces => list_interfaces(),
        Command::Block {
            addr,
            duration,
            reason,
            control,
        } => {
            let command = vigil::response::engine::Command::Block {
                addr,
                for_secs: duration.0.as_secs(),
                reason,
            };
            finish_control(control_command(&control, command)?)
        }
        Command::Unblock { addr, control } => {
            let command = vigil::response::engine::Command::Unblock { addr };
            finish_control(control_command(&control, command)?)
        }
        Command::Blocks { json, control } => {
            let reply = control_command(&control, vigil::response::engine::Command::Blocks)?;
            print_blocks(&reply, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(args) => {
            let opts = vigil::verify::VerifyOptions {
                dirs: args.dirs,
                keep: args.keep,
                filter: args.filter,
                expectations: args.expectations,
                quiet: args.quiet,
                verbose: args.verbose,
            };
            let summary = vigil::verify::run(&opts, &mut std::io::stdout().lock())?;
            Ok(if summary.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Rules {
            command:
                RulesCommand::Check {
                    files,
                    config,
                    strict,
                    quiet,
                },
        } => {
            let config = match &config {
                Some(path) => Config::load(path)?,
                None => Config::default(),
            };
            rules_check(&files, &config, strict, quiet)
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => {
            Config::load(&file)?;
            println!("{}: OK", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Defaults,
        } => {
            print!("{}", Config::defaults_toml());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_replay(args: ReplayArgs) -> Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let workers = args.workers.unwrap_or_else(|| config.workers());
    anyhow::ensure!(
        (1..=1024).contains(&workers),
        "--workers must be at least 1 and at most 1024"
    );
    let rule_stats_file = configured_path(&config.eve.rule_stats_file);
    let (file, outputs) = split_outputs(&args.outputs)?;
    let (file_dir, file_types) = file.map_or((None, None), |f| (Some(f.dir), f.types));
    if let Some(types) = file_types {
        config.eve.types = types;
    }
    let eve_dir = args
        .eve_dir
        .clone()
        .or(file_dir)
        .unwrap_or_else(|| config.eve.dir.clone());
    let show_progress = match args.progress {
        Progress::Always => true,
        Progress::Never => false,
        Progress::Auto => std::io::stderr().is_terminal() && !args.quiet,
    };
    let progress = show_progress.then(progress_bar);
    let rule_files = if args.rules.is_empty() {
        config.rules.files.clone()
    } else {
        args.rules.clone()
    };
    let rules = if rule_files.is_empty() {
        None
    } else {
        let cache = if args.no_rules_cache {
            None
        } else {
            vigil::detect::cache_dir(&config.rules)
        };
        let started = std::time::Instant::now();
        let (rules, report) = vigil::detect::load_rules(&rule_files, &config.rules, cache)
            .context("loading rules")?;
        if !args.quiet {
            eprintln!(
                "vigil: {} rules loaded, {} skipped ({} waiting for a parser) in {:.2} s{}",
                report.loaded,
                report.skipped.len(),
                report.waiting.len(),
                started.elapsed().as_secs_f64(),
                if report.cache_hit {
                    " (prefilter from cache)"
                } else {
                    ""
                },
            );
        }
        Some(rules)
    };
    let rules_loaded = rules.as_ref().map_or(0, |r| r.len());
    let report = replay(ReplayOptions {
        files: args.files.clone(),
        config,
        workers,
        eve_dir,
        rules,
        outputs,
        respond_dry_run: match args.respond {
            None => false,
            Some(RespondArg::DryRun) => true,
            Some(RespondArg::On) => {
                anyhow::bail!("replay only runs active response as --respond=dry-run")
            }
        },
        progress,
    })
    .context("replay failed")?;
    if let Some(path) = args.rule_stats.as_ref().or(rule_stats_file.as_ref()) {
        vigil::stats::write_rule_stats(path, &report.stats)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if !args.quiet {
        eprint!("{}", summary(&report, rules_loaded));
    }
    for e in &report.input_errors {
        eprintln!("vigil: error: {e}");
    }
    Ok(if report.input_errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_daemon(args: RunArgs) -> Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let (file, outputs) = split_outputs(&args.outputs)?;
    let (file_dir, file_types) = file.map_or((None, None), |f| (Some(f.dir), f.types));
    if let Some(listen) = args.metrics_listen.as_deref().filter(|l| !l.is_empty()) {
        // An empty address turns the exporter off, as in the config.
        listen
            .parse::<std::net::SocketAddr>()
            .with_context(|| format!("--metrics-listen must be ADDRESS:PORT, not {listen:?}"))?;
    }
    let overrides = vigil::daemon::CliOverrides {
        interfaces: args.interfaces.clone(),
        method: args.capture.map(|method| match method {
            CaptureArg::AfXdp => vigil::config::CaptureMethod::AfXdp,
            CaptureArg::AfPacket => vigil::config::CaptureMethod::AfPacket,
            CaptureArg::Pcap => vigil::config::CaptureMethod::Pcap,
        }),
        eve_types: file_types,
        eve_dir: args.eve_dir.clone().or(file_dir),
        metrics_listen: args.metrics_listen.clone(),
        bpf_filter: args.bpf.clone(),
        user: args.user.clone(),
    };
    overrides.apply(&mut config);
    let workers = args.workers.unwrap_or_else(|| config.workers());
    anyhow::ensure!(
        (1..=1024).contains(&workers),
        "--workers must be at least 1 and at most 1024"
    );
    let rule_stats = args
        .rule_stats
        .clone()
        .or_else(|| configured_path(&config.eve.rule_stats_file));
    let report = vigil::daemon::run(vigil::daemon::DaemonOptions {
        config,
        config_path: args.config.clone(),
        overrides,
        rules_files: args.rules.clone(),
        workers,
        use_rules_cache: !args.no_rules_cache,
        outputs,
        respond: args.respond.map(respond_mode),
        inject_iface: args.inject_iface.clone(),
        rule_stats,
    })?;
    let s = &report.stats;
    let capture = s.capture.unwrap_or_default();
    eprintln!(
        "vigil: stopped after {} s: {} packets, {} dropped by the kernel, {} flows, {} alerts, {} events written, {} shed on a full output queue",
        s.uptime_secs,
        s.decoder.pkts,
        capture.kernel_drops,
        s.flow.total,
        s.alerts,
        report.output.events,
        s.events_dropped
    );
    for u in &report.output.upstream {
        eprintln!(
            "vigil: output {}: {} events delivered, {} left in its spool, {} dropped, {} refused",
            u.name, u.acked, u.spool.events, u.spool.dropped, u.rejected
        );
    }
    if let Some(a) = report.anomaly.as_ref().map(|a| a.snapshot()) {
        eprintln!(
            "vigil: anomaly models: {} alerts from {} observations ({} batches lost)",
            a.alerts, a.observations, a.batches_dropped
        );
    }
    if let Some(r) = &report.response {
        eprintln!("vigil: response: {}", response_line(r));
    }
    Ok(ExitCode::SUCCESS)
}

fn finish_control(reply: vigil::response::engine::Reply) -> Result<ExitCode> {
    if reply.ok {
        println!("{}", reply.message);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("vigil: {}", reply.message);
        Ok(ExitCode::from(1))
    }
}

fn respond_mode(arg: RespondArg) -> vigil::response::Mode {
    match arg {
        RespondArg::On => vigil::response::Mode::Act,
        RespondArg::DryRun => vigil::response::Mode::DryRun,
    }
}

fn response_line(r: &vigil::response::ResponseCounters) -> String {
    let r = r.snapshot();
    format!(
        "{} requests ({} dropped on a full ring), {} resets, {} ICMP unreachables, {} blocks, {} unblocks, {} expired, {} dry-run, {} refused by the allowlist, {} by the rate limit, {} failed, {} blocks active",
        r.requests,
        r.requests_dropped,
        r.resets,
        r.icmp_unreachables,
        r.blocks,
        r.unblocks,
        r.expired,
        r.dry_run,
        r.refused_allowlist,
        r.refused_rate_limit,
        r.failed,
        r.blocks_active,
    )
}

/// `vigil block`, `unblock`, `blocks`: one command to the daemon's control socket.
fn control_command(
    control: &ControlArgs,
    command: vigil::response::engine::Command,
) -> Result<vigil::response::engine::Reply> {
    let socket = match (&control.socket, &control.config) {
        (Some(path), _) => path.clone(),
        (None, Some(config)) => Config::load(config)?.response.control_socket,
        (None, None) => Config::default().response.control_socket,
    };
    vigil::response::control::request(&socket, &command).map_err(anyhow::Error::msg)
}

fn print_blocks(reply: &vigil::response::engine::Reply, json: bool) -> Result<()> {
    if json {
        for b in &reply.blocks {
            println!("{}", serde_json::to_string(b)?);
        }
        return Ok(());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    println!("{:<40} {:>10}  REASON", "ADDRESS", "EXPIRES IN");
    for b in &reply.blocks {
        let left = vigil::response::policy::HumanDuration(std::time::Duration::from_secs(
            b.until.saturating_sub(now),
        ));
        println!("{:<40} {:>10}  {}", b.addr, left.to_string(), b.reason);
    }
    Ok(())
}

/// `--output` values: a `file:DIR` (the eve.json directory, optionally `?types=…`) and the
/// upstream sink URLs, checked before anything starts.
fn split_outputs(outputs: &[String]) -> Result<(Option<FileOutput>, Vec<String>)> {
    let mut file = None;
    let mut upstream = Vec::new();
    for out in outputs {
        if let Some(rest) = out.strip_prefix("file:") {
            anyhow::ensure!(file.is_none(), "only one --output file:DIR is supported");
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            let mut types = None;
            for param in query.split('&').filter(|p| !p.is_empty()) {
                let list = param.strip_prefix("types=").with_context(|| {
                    format!("{out}: unknown parameter {param:?} (file: takes types=)")
                })?;
                let names: Vec<String> = list.split(',').map(str::to_string).collect();
                vigil::output::sink::TypeSet::from_names(&names)
                    .map_err(|e| anyhow::anyhow!("{out}: {e}"))?;
                types = Some(names);
            }
            file = Some(FileOutput {
                dir: PathBuf::from(path),
                types,
            });
        } else {
            vigil::output::check_url(out).map_err(anyhow::Error::msg)?;
            upstream.push(out.clone());
        }
    }
    Ok((file, upstream))
}

/// `--output file:DIR[?types=…]`.
struct FileOutput {
    dir: PathBuf,
    types: Option<Vec<String>>,
}

fn list_interfaces() -> Result<ExitCode> {
    let interfaces = vigil::capture::interfaces::list().context("reading /sys/class/net")?;
    println!(
        "{:<16} {:<8} {:<12} {:>9} {:>6}  {:<17}  XDP zero-copy",
        "INTERFACE", "STATE", "DRIVER", "RX QUEUES", "MTU", "MAC"
    );
    for i in interfaces {
        let zc = match i.xdp_zero_copy {
            Some(true) => "yes",
            Some(false) => "no",
            None => "unknown",
        };
        println!(
            "{:<16} {:<8} {:<12} {:>9} {:>6}  {:<17}  {zc}",
            i.name, i.state, i.driver, i.rx_queues, i.mtu, i.mac
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn progress_bar() -> Box<dyn FnMut(u64, u64) + Send> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Box::new(move |done, total| {
        bar.set_length(total);
        bar.set_position(done);
        if done >= total {
            bar.finish_and_clear();
        }
    })
}

fn rules_check(files: &[PathBuf], config: &Config, strict: bool, quiet: bool) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let (_rules, report) =
        vigil::detect::load_rules(files, &config.rules, None).context("loading rules")?;
    let mut out = std::io::stdout().lock();
    match write_rules_report(&mut out, &report, started.elapsed(), quiet) {
        Ok(()) => {}
        // A reader that went away (`| head`) is not an error of the check.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(e).context("writing the report"),
    }
    Ok(if strict && !report.skipped.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn write_rules_report(
    out: &mut impl std::io::Write,
    report: &vigil_signatures::LoadReport,
    took: std::time::Duration,
    quiet: bool,
) -> std::io::Result<()> {
    let total = report.loaded + report.skipped.len();
    writeln!(
        out,
        "{} of {} rules loaded ({:.2} %), {} skipped, in {:.2} s",
        report.loaded,
        total,
        100.0 * report.loaded as f64 / total.max(1) as f64,
        report.skipped.len(),
        took.as_secs_f64()
    )?;
    let mut by_reason: std::collections::BTreeMap<String, usize> = Default::default();
    for s in &report.skipped {
        *by_reason.entry(s.reason_class()).or_default() += 1;
    }
    let mut reasons: Vec<_> = by_reason.into_iter().collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
    for (reason, n) in &reasons {
        writeln!(out, "  skipped {n:>6}  {reason}")?;
    }
    let mut waiting: std::collections::BTreeMap<&str, usize> = Default::default();
    for (_, w) in &report.waiting {
        *waiting.entry(w.as_str()).or_default() += 1;
    }
    for (w, n) in &waiting {
        writeln!(
            out,
            "  loaded  {n:>6}  waiting for {w} (cannot match until it lands)"
        )?;
    }
    if !quiet {
        for s in &report.skipped {
            let column = s.column.map_or(String::new(), |c| format!(" column {c}:"));
            writeln!(
                out,
                "{}:{}: sid {}:{column} {}",
                s.file,
                s.line,
                s.sid.map_or("?".to_string(), |v| v.to_string()),
                s.reason.message()
            )?;
        }
    }
    Ok(())
}

/// Rules the replay summary lists by alert count.
const TOP_RULES: usize = 10;

fn summary(r: &ReplayReport, rules_loaded: usize) -> String {
    let s = &r.stats;
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let events: Vec<String> = {
        let mut ev = s.decoder.events.clone();
        ev.sort_by_key(|e| std::cmp::Reverse(e.1));
        ev.iter().take(5).map(|(n, c)| format!("{n} {c}")).collect()
    };
    let mut out = String::new();
    out.push_str(&format!(
        "vigil replay: {} packets, {} bytes in {:.3} s ({:.2} Mpps, {:.2} Gbit/s), {} worker{}\n",
        s.decoder.pkts,
        s.decoder.bytes,
        secs,
        s.decoder.pkts as f64 / secs / 1e6,
        s.decoder.bytes as f64 * 8.0 / secs / 1e9,
        r.workers,
        if r.workers == 1 { "" } else { "s" },
    ));
    out.push_str(&format!(
        "  flows {} (tcp {}, udp {}, icmp {}, other {}), evicted {}, emergency {}\n",
        s.flow.total,
        s.flow.tcp,
        s.flow.udp,
        s.flow.icmpv4 + s.flow.icmpv6,
        s.flow.other,
        s.flow.evicted,
        s.flow.emerg_mode_entered,
    ));
    let model_alerts = r.anomaly.as_ref().map_or(0, |c| c.snapshot().alerts);
    out.push_str(&format!(
        "  alerts {}{}, decode errors {}{}\n",
        s.alerts,
        match (rules_loaded, model_alerts) {
            (0, 0) => " (no rules loaded)".to_string(),
            (0, m) => format!(" (no rules loaded; {m} from anomaly models)"),
            (n, m) => format!(
                " ({} from {n} rules, {m} from anomaly models)",
                s.alerts - m
            ),
        },
        s.decoder.decode_errors,
        if events.is_empty() {
            String::new()
        } else {
            format!(" ({})", events.join(", "))
        },
    ));
    let top = s.rule_alerts.top(TOP_RULES);
    if !top.is_empty() {
        out.push_str(&format!(
            "  top rules by alerts ({} of {} that alerted):\n",
            top.len(),
            s.rule_alerts.rules().len()
        ));
        for r in top {
            out.push_str(&format!(
                "    {:>8}  {}:{}:{}  {}\n",
                r.alerts, r.gid, r.sid, r.rev, r.msg
            ));
        }
    }
    if let Some(c) = r.anomaly.as_ref().map(|c| c.snapshot()) {
        out.push_str(&format!(
            "  anomaly models: {} alerts from {} observations ({} batches lost on a full ring, {} entries forgotten at the cap)\n",
            c.alerts, c.observations, c.batches_dropped, c.evicted,
        ));
    }
    let a = &s.app_layer;
    out.push_str(&format!(
        "  app-layer flows: http {}, tls {}, dns {}, ssh {}, unrecognised {}; events: http {}, dns {}, tls {}, ssh {}, fileinfo {}\n",
        a.flows_http,
        a.flows_tls,
        a.flows_dns_udp + a.flows_dns_tcp,
        a.flows_ssh,
        a.flows_failed_tcp + a.flows_failed_udp,
        s.app_events.http,
        s.app_events.dns(),
        s.app_events.tls,
        s.app_events.ssh,
        s.app_events.files,
    ));
    out.push_str(&format!(
        "  tcp reassembly: {} bytes, gaps {}, overlaps {} ({} with different data), memcap drops {}, depth reached {}\n",
        a.stream.reassembled_bytes,
        a.stream.gaps,
        a.stream.overlaps,
        a.stream.overlaps_different,
        a.stream.memcap_drops,
        a.stream.depth_reached,
    ));
    out.push_str(&format!(
        "  fragments {} reassembled into {}, anomaly events {} (+{} over the rate limit)\n",
        s.defrag.ipv4_fragments + s.defrag.ipv6_fragments,
        s.defrag.ipv4_reassembled + s.defrag.ipv6_reassembled,
        s.anomaly_events,
        s.anomalies_suppressed,
    ));
    let o = &r.output;
    let busy = o.busy.as_secs_f64();
    out.push_str(&format!(
        "  events: {} written to {} (output thread busy {:.3} s{}); workers waited for the output {} times ({:.1} ms)\n",
        o.events,
        r.eve_path.display(),
        busy,
        if busy > 0.0 {
            format!(", {:.0} events/s", o.events as f64 / busy)
        } else {
            String::new()
        },
        s.output_waits,
        s.output_wait_ns as f64 / 1e6,
    ));
    for u in &o.upstream {
        out.push_str(&format!(
            "  output {}: {} events delivered, {} left in its spool, {} dropped, {} refused, {} reconnects\n",
            u.name, u.acked, u.spool.events, u.spool.dropped, u.rejected, u.reconnects,
        ));
    }
    if !o.upstream.is_empty() {
        out.push_str(&format!(
            "  delivery after processing: {:.3} s\n",
            o.drain.as_secs_f64()
        ));
    }
    out
}

/// A path setting of the config file; empty means unset.
fn configured_path(path: &std::path::Path) -> Option<PathBuf> {
    (!path.as_os_str().is_empty()).then(|| path.to_path_buf())
}
