//! `vigil-pcapgen OUT.pcap --size-mb N --seed S`: writes a deterministic
//! mixed-traffic capture and optionally its per-flow ground truth as JSON.
//!
//! `--app-variants` adds SSH, odd-port, binary, HTTP/DNS variant and TLS 1.2
//! flows; `--impair reorder=0.05,dup=0.02,loss=0.01,overlap=0.01` impairs TCP;
//! `--scenario port_scan=3,beacon=2,...` injects labelled behaviours whose
//! ground truth goes to the `scenarios` array of the `--truth` JSON.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use vigil_pcapgen::{
    convert_linktype, generate, generate_each, Endian, GenConfig, GenSummary, Impair, LinkType,
    Mix, PcapOptions, PcapWriter, PcapngInterface, PcapngWriter, Scenario, ScenarioKind,
    TsPrecision, Variants,
};

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Format {
    Pcap,
    Pcapng,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Link {
    Ethernet,
    Raw,
    Ipv4,
    Ipv6,
    Sll,
    Sll2,
    Null,
    Loop,
}

#[derive(Parser)]
#[command(version, about = "Deterministic mixed-traffic pcap generator")]
struct Args {
    /// Output path ("-" for stdout).
    out: PathBuf,
    /// Approximate output size in MiB (fractions allowed).
    #[arg(long, default_value_t = 10.0)]
    size_mb: f64,
    /// RNG seed; same seed and options give a byte-identical file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Start time, seconds since the epoch.
    #[arg(long, default_value_t = 1_715_594_400)]
    base_ts: u64,
    /// Nanosecond timestamps (pcap magic 0xa1b23c4d / pcapng if_tsresol 9).
    #[arg(long)]
    nanos: bool,
    /// Write per-flow ground truth as JSON here.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Mean new flows per second of capture time.
    #[arg(long, default_value_t = 100.0)]
    flows_per_sec: f64,
    /// Probability of dropping one fragment of a fragmented datagram (fault injection).
    #[arg(long, default_value_t = 0.0)]
    frag_drop: f64,
    /// File format.
    #[arg(long, value_enum, default_value_t = Format::Pcap)]
    format: Format,
    /// Link type; frames it cannot express (e.g. VLAN for raw) are skipped.
    #[arg(long, value_enum, default_value_t = Link::Ethernet)]
    linktype: Link,
    /// Big-endian file.
    #[arg(long)]
    big_endian: bool,
    /// Truncate frames to this many bytes.
    #[arg(long, default_value_t = 65535)]
    snaplen: u32,
    /// Add the application-layer variant flows (SSH, protocols on unusual
    /// ports, binary on 80/443, HTTP/DNS variants, TLS 1.2) at standard weights.
    #[arg(long)]
    app_variants: bool,
    /// Variant weights, e.g. "ssh=6,odd_ports=8,binary=3,http=14,dns=10,tls12=8"
    /// (overrides --app-variants; default mix weights sum to 100).
    #[arg(long, value_parser = parse_variants)]
    variants: Option<Variants>,
    /// Flow mix weights, e.g. "http=6,tls=4,dns=84,other_udp=6,icmp=0" (an event-heavy load);
    /// kinds not named keep their default weight.
    #[arg(long, value_parser = parse_mix)]
    mix: Option<Mix>,
    /// TCP impairments, e.g. "reorder=0.05,dup=0.02,loss=0.01,overlap=0.01".
    #[arg(long, value_parser = Impair::parse)]
    impair: Option<Impair>,
    /// Labelled behaviours on top of the background, as KIND=ACTORS, e.g.
    /// "port_scan=3,host_sweep=2,dns_tunnel=2,beacon=2,exfil=1,protocol_misuse=3".
    #[arg(long, value_parser = parse_scenarios)]
    scenario: Option<Scenarios>,
}

/// The parsed `--scenario` list (a newtype: clap reads `Option<Vec<_>>` as
/// a repeated argument).
#[derive(Clone)]
struct Scenarios(Vec<Scenario>);

/// `KIND=WEIGHT,…` pairs.
fn weights(s: &str) -> Result<Vec<(&str, u32)>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (k, w) = part
                .split_once('=')
                .ok_or_else(|| format!("expected KIND=WEIGHT, got {part:?}"))?;
            let w = w.parse().map_err(|_| format!("bad weight {w:?} for {k}"))?;
            Ok((k, w))
        })
        .collect()
}

fn parse_variants(s: &str) -> Result<Variants, String> {
    let mut v = Variants::default();
    for (k, w) in weights(s)? {
        match k {
            "ssh" => v.ssh = w,
            "odd_ports" => v.odd_ports = w,
            "binary" => v.binary = w,
            "http" => v.http = w,
            "dns" => v.dns = w,
            "tls12" => v.tls12 = w,
            _ => {
                return Err(format!(
                    "unknown variant {k:?} (ssh, odd_ports, binary, http, dns, tls12)"
                ))
            }
        }
    }
    Ok(v)
}

fn parse_mix(s: &str) -> Result<Mix, String> {
    let mut m = Mix::default();
    for (k, w) in weights(s)? {
        match k {
            "http" => m.http = w,
            "tls" => m.tls = w,
            "dns" => m.dns = w,
            "other_udp" => m.other_udp = w,
            "icmp" => m.icmp = w,
            _ => {
                return Err(format!(
                    "unknown flow kind {k:?} (http, tls, dns, other_udp, icmp)"
                ))
            }
        }
    }
    if m.http + m.tls + m.dns + m.other_udp + m.icmp == 0 {
        return Err("the mix weights sum to 0".into());
    }
    Ok(m)
}

fn parse_scenarios(s: &str) -> Result<Scenarios, String> {
    let mut out: Vec<Scenario> = Vec::new();
    for (k, count) in weights(s)? {
        let kind = ScenarioKind::from_name(k).ok_or_else(|| {
            let names: Vec<&str> = ScenarioKind::ALL.iter().map(|k| k.name()).collect();
            format!("unknown scenario {k:?} ({})", names.join(", "))
        })?;
        if count > Scenario::MAX_COUNT {
            return Err(format!("{k}={count}: at most {}", Scenario::MAX_COUNT));
        }
        // A kind named twice adds up rather than planning two actor sets
        // that would share addresses.
        match out.iter_mut().find(|s| s.kind == kind) {
            Some(s) => s.count = (s.count + count).min(Scenario::MAX_COUNT),
            None => out.push(Scenario { kind, count }),
        }
    }
    Ok(Scenarios(out))
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let cfg = GenConfig {
        seed: args.seed,
        target_bytes: (args.size_mb * 1024.0 * 1024.0) as u64,
        base_ts_secs: args.base_ts,
        nanos: args.nanos,
        flows_per_sec: args.flows_per_sec,
        frag_drop_prob: args.frag_drop,
        variants: match (&args.variants, args.app_variants) {
            (Some(v), _) => v.clone(),
            (None, true) => Variants::standard(),
            (None, false) => Variants::default(),
        },
        impair: args.impair.clone().unwrap_or_default(),
        mix: args.mix.clone().unwrap_or_default(),
        scenarios: args.scenario.clone().map(|s| s.0).unwrap_or_default(),
        ..GenConfig::default()
    };
    let out: Box<dyn Write> = if args.out.as_os_str() == "-" {
        Box::new(io::stdout().lock())
    } else {
        Box::new(File::create(&args.out)?)
    };
    let start = Instant::now();
    let plain = args.format == Format::Pcap
        && args.linktype == Link::Ethernet
        && !args.big_endian
        && args.snaplen == 65535;
    let summary = if plain {
        generate(&cfg, out)?
    } else {
        write_custom(args, &cfg, out)?
    };
    let secs = start.elapsed().as_secs_f64();
    let mut line = format!(
        "packets={} bytes={} flows={} time={:.2}s rate={:.0} MB/s",
        summary.packets,
        summary.bytes_written,
        summary.flows.len(),
        secs,
        summary.bytes_written as f64 / 1e6 / secs.max(1e-9)
    );
    if !summary.scenarios.is_empty() {
        line.push_str(&format!(" scenario_actors={}", summary.scenarios.len()));
    }
    // Keep stdout clean when the capture itself goes there.
    if args.out.as_os_str() == "-" {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
    if let Some(path) = &args.truth {
        let mut w = BufWriter::new(File::create(path)?);
        serde_json::to_writer_pretty(&mut w, &summary)?;
        w.write_all(b"\n")?;
        w.flush()?;
    }
    Ok(())
}

/// Other formats/link types: re-encode the frame stream on the fly.
/// (The summary's byte counts still describe the Ethernet frames.)
fn write_custom(args: &Args, cfg: &GenConfig, out: Box<dyn Write>) -> io::Result<GenSummary> {
    let lt = match args.linktype {
        Link::Ethernet => LinkType::Ethernet,
        Link::Raw => LinkType::RawIp,
        Link::Ipv4 => LinkType::Ipv4,
        Link::Ipv6 => LinkType::Ipv6,
        Link::Sll => LinkType::LinuxSll,
        Link::Sll2 => LinkType::LinuxSll2,
        Link::Null => LinkType::Null {
            af_inet6: 24,
            big_endian: args.big_endian,
        },
        Link::Loop => LinkType::Loop { af_inet6: 24 },
    };
    let endian = if args.big_endian {
        Endian::Big
    } else {
        Endian::Little
    };
    let out = BufWriter::with_capacity(1 << 20, out);
    let convert = |f: &[u8]| -> Option<Vec<u8>> {
        if lt == LinkType::Ethernet {
            Some(f.to_vec())
        } else {
            convert_linktype(f, lt)
        }
    };
    match args.format {
        Format::Pcap => {
            let opts = PcapOptions {
                endian,
                precision: if args.nanos {
                    TsPrecision::Nano
                } else {
                    TsPrecision::Micro
                },
                snaplen: args.snaplen,
                linktype: lt.dlt(),
            };
            let mut w = PcapWriter::new(out, opts)?;
            let s = generate_each(cfg, |ts, f| match convert(f) {
                Some(c) => w.write_packet(ts, &c),
                None => Ok(()),
            })?;
            w.into_inner()?.flush()?;
            Ok(s)
        }
        Format::Pcapng => {
            let mut w = PcapngWriter::new(out, endian)?;
            w.add_interface(PcapngInterface {
                linktype: lt.dlt() as u16,
                snaplen: args.snaplen,
                tsresol: if args.nanos { 9 } else { 6 },
                name: Some("vigil0".into()),
            })?;
            let s = generate_each(cfg, |ts, f| match convert(f) {
                Some(c) => w.write_epb(0, ts, &c, c.len() as u32),
                None => Ok(()),
            })?;
            w.into_inner()?.flush()?;
            Ok(s)
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-pcapgen: {e}");
            ExitCode::FAILURE
        }
    }
}
