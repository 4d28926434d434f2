//! `raftbed sim`: one deterministic simulation, or a sweep over seeds.
//! Exit codes: 0 everything held, 1 a violation (safety, liveness or linearizability),
//! 2 a bad command line, 4 nothing violated but a check undecided (the history checker's
//! budget ran out).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::sim::nemesis::FaultKind;
use crate::sim::{SimBugs, SimOptions, SimTransport, run};

/// Arguments of `raftbed sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Run this one seed.
    #[arg(long, conflicts_with = "seeds", required_unless_present = "seeds")]
    seed: Option<u64>,
    /// Sweep seeds A..B (B excluded), on every core.
    #[arg(long, value_parser = parse_seeds)]
    seeds: Option<std::ops::Range<u64>>,
    /// The fixed world (5 nodes, 8 clients, 2 lock clients, 2 watchers, every fault kind,
    /// 100 revisions kept) instead of the one each seed draws (swarm testing).
    #[arg(long)]
    no_swarm: bool,
    /// Raft nodes (1 to 9; drawn from 3, 5, 7 with swarm, 5 without).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=9))]
    nodes: Option<u64>,
    /// Workload clients (0 to 64; 0 is an idle cluster: no readers and no lock clients;
    /// drawn from 2-16 with swarm, 8 without).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=64))]
    clients: Option<u64>,
    /// Watchers of the workload's keys (0 to 16), resuming across members; what they are sent
    /// is checked against the committed history (drawn from 0-3 with swarm, 2 without).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=16))]
    watchers: Option<u64>,
    /// List-append transaction clients beside the single-key ones (0 to 16), checked for
    /// Elle's anomalies (drawn from 0, 2 or 3 with swarm, 0 without).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=16))]
    append_clients: Option<u64>,
    /// Revisions the leader's auto-compaction keeps, checked every second (etcd's
    /// `--auto-compaction-mode revision`); 0 never compacts (drawn with swarm, 100 without).
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
    auto_compaction_retention: Option<i64>,
    /// Simulated length of the fault phase: 60s, 500ms, 2m (at most 1h).
    #[arg(long, default_value = "60s", value_parser = parse_run_duration)]
    duration: Duration,
    /// Fault kinds, comma-separated: partition,crash,pause,clock,loss; or all, or none (drawn
    /// with swarm, all without).
    #[arg(long, value_parser = parse_faults)]
    faults: Option<Faults>,
    /// A bug to switch on in the code under test (repeatable; the README's zoo table says
    /// what each breaks and where it comes from). It never changes the drawn world.
    #[arg(long = "bug", value_parser = crate::sim::BUG_NAMES)]
    bugs: Vec<String>,
    /// Situations the run must reach, comma-separated (leader-elected, lease-lapsed,
    /// suffix-truncated, snapshot-installed, ...: `coverage` in the report names them); a run
    /// that never reached one is undecided (exit 4).
    #[arg(long, value_parser = parse_required)]
    require: Option<Required>,
    /// Run the whole schedule even after an invariant breaks, so the history shows what
    /// clients would have seen of it.
    #[arg(long)]
    keep_going: bool,
    /// Write the run's trace here.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Write the clients' history here, as jsonl (for `raftbed check`, Knossos or Elle).
    #[arg(long)]
    history: Option<PathBuf>,
    /// Write the fates of the history's writes here, read from the final committed log (for
    /// `raftbed check --resolved`).
    #[arg(long)]
    resolved: Option<PathBuf>,
    /// Write what the watchers were sent and the committed history it is checked against, as
    /// jsonl (for `raftbed check --format watches`).
    #[arg(long)]
    watches: Option<PathBuf>,
    /// Write the run as a scenario file here: the world the seed drew and every fault its
    /// nemesis applied, when. `raftbed replay FILE` runs it again (the same trace hash), and
    /// `--shrink` takes away what the outcome does not need.
    #[arg(long, conflicts_with = "seeds")]
    emit_scenario: Option<PathBuf>,
    /// Run one shard of the sweep: I/N runs the seeds s with (s - A) mod N = I; N alone takes
    /// I from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job: deploy/sweep-job.yaml).
    #[arg(long, requires = "seeds")]
    shard: Option<String>,
    /// Write one JSON line per seed here as it finishes (- for standard output, which then
    /// carries nothing else): seed, configuration, verdict, coverage, margins, trace hash,
    /// replay command. `raftbed merge` joins the lines of many shards into one table.
    #[arg(long, requires = "seeds")]
    jsonl: Option<PathBuf>,
    /// Sweep the seeds once per bug switch and print, per switch, the first seed that caught
    /// it, the catch rate, the checks that fired and the replay command.
    #[arg(long, requires = "seeds", conflicts_with_all = ["bugs", "jsonl"])]
    bug_zoo: bool,
    /// Threads for a sweep (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
    /// Peer transport: datagram (one per message; the default with `--transport messages`),
    /// framed (prost frames over TCP; the default with `--transport wire`) or grpc (tonic over
    /// HTTP/2).
    #[arg(long, value_parser = ["datagram", "framed", "grpc"])]
    peer_transport: Option<String>,
    /// How gRPC travels between simulated hosts: messages (each call's parts as datagrams,
    /// fast) or wire (tonic over HTTP/2 over simulated TCP, as real nodes talk).
    #[arg(long, default_value = "messages", value_parser = ["messages", "wire"])]
    transport: String,
    /// What the clients do: kv (put, get, cas and delete, checked for linearizability) or
    /// append (list-append transactions over etcd's Txn, checked for Elle's anomalies).
    #[arg(long, default_value = "kv", value_parser = ["kv", "append"])]
    workload: String,
    #[command(flatten)]
    check: super::replay::CheckArgs,
}

/// A parsed `--faults` list.
#[derive(Clone, Debug)]
pub struct Faults(Vec<FaultKind>);

fn parse_faults(text: &str) -> Result<Faults, String> {
    match text {
        "all" => return Ok(Faults(FaultKind::ALL.to_vec())),
        "none" | "" => return Ok(Faults(Vec::new())),
        _ => {}
    }
    let mut kinds = Vec::new();
    for name in text.split(',') {
        let kind = FaultKind::parse(name.trim()).ok_or_else(|| {
            format!("unknown fault kind {name:?} (partition, crash, pause, clock, loss, all, none)")
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds.sort();
    Ok(Faults(kinds))
}

/// A parsed `--require` list.
#[derive(Clone, Debug)]
pub struct Required(Vec<String>);

fn parse_required(text: &str) -> Result<Required, String> {
    crate::sim::coverage::parse_names(text).map(Required)
}

fn parse_seeds(text: &str) -> Result<std::ops::Range<u64>, String> {
    let (a, b) = text.split_once("..").ok_or_else(|| format!("expected A..B, got {text:?}"))?;
    let a: u64 = a.parse().map_err(|_| format!("bad start {a:?} in {text:?}"))?;
    let b: u64 = b.parse().map_err(|_| format!("bad end {b:?} in {text:?}"))?;
    if a >= b {
        return Err(format!("empty range {text}: the end must be above the start"));
    }
    Ok(a..b)
}

/// Parses `60s`, `500ms`, `2m`, `1h` (more than zero).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match crate::scenario::parse_duration(text)? {
        d if d.is_zero() => Err(format!("duration {text:?} must be more than zero")),
        d => Ok(d),
    }
}

/// The longest run `sim` and `test` take.
pub const MAX_RUN: Duration = Duration::from_secs(3600);

/// Parses a run's length: more than zero, at most an hour.
pub fn parse_run_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d > MAX_RUN => Err(format!("{text:?} is longer than an hour, the most a run takes")),
        d => Ok(d),
    }
}

/// Runs `raftbed sim`.
pub fn run_sim(args: &SimArgs) -> ExitCode {
    if args.transport == "wire" && args.peer_transport.as_deref() == Some("datagram") {
        eprintln!("raftbed sim: datagram peers need --transport messages (wire is TCP only)");
        return ExitCode::from(2);
    }
    let mut bugs = SimBugs::default();
    for bug in &args.bugs {
        bugs.enable(bug).expect("clap checked the names");
    }
    let pins = crate::sim::swarm::Pins {
        nodes: args.nodes.map(|n| n as usize),
        clients: args.clients.map(|n| n as usize),
        watchers: args.watchers.map(|n| n as usize),
        append_clients: args.append_clients.map(|n| n as usize),
        faults: args.faults.as_ref().map(|f| f.0.clone()),
        history_kept: args.auto_compaction_retention,
    };
    let fixed = SimOptions::new(0);
    let base = SimOptions {
        nodes: pins.nodes.unwrap_or(fixed.nodes),
        clients: pins.clients.unwrap_or(fixed.clients),
        watchers: pins.watchers.unwrap_or(fixed.watchers),
        append_clients: pins.append_clients.unwrap_or(fixed.append_clients),
        history_kept: pins.history_kept.unwrap_or(fixed.history_kept),
        faults: pins.faults.clone().unwrap_or(fixed.faults),
        swarm: (!args.no_swarm).then_some(pins),
        duration: args.duration,
        bugs,
        keep_trace: args.trace.is_some(),
        keep_going: args.keep_going,
        peer_transport: args.peer_transport.as_deref().map(|name| match name {
            "grpc" => crate::transport::PeerTransport::Grpc,
            "datagram" => crate::transport::PeerTransport::Datagram,
            _ => crate::transport::PeerTransport::Framed,
        }),
        check: args.check.budget(),
        required: args.require.clone().map(|r| r.0).unwrap_or_default(),
        transport: if args.transport == "wire" {
            SimTransport::Wire
        } else {
            SimTransport::Messages
        },
        workload: crate::sim::Workload::from_name(&args.workload),
        ..SimOptions::new(args.seed.unwrap_or(0))
    };
    super::quiet_panics();
    let Some(range) = &args.seeds else {
        let outputs = [&args.trace, &args.history, &args.resolved, &args.watches];
        return run_one(&base, outputs, args.emit_scenario.as_deref());
    };
    let seeds = match &args.shard {
        Some(text) => {
            let index = std::env::var(crate::sim::shard::INDEX_VARIABLE).ok();
            match crate::sim::shard::Shard::parse(text, index.as_deref()) {
                Ok(shard) => shard.seeds(range.clone()),
                Err(e) => {
                    eprintln!("raftbed sim: --shard: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        None => range.clone().collect(),
    };
    if args.bug_zoo {
        return super::sweep::bug_zoo(&base, &seeds, args.jobs);
    }
    let lines = match args.jsonl.as_deref().map(super::sweep::Lines::open).transpose() {
        Ok(lines) => lines,
        Err(e) => {
            eprintln!("raftbed sim: {e}");
            return ExitCode::from(2);
        }
    };
    let results = super::sweep::run_seeds(&base, &seeds, args.jobs, lines.as_ref());
    if args.jsonl.as_deref() != Some(std::path::Path::new("-")) {
        print!("{}", crate::sim::sweep::table(&results));
    }
    super::sweep::exit_code(&results)
}

/// Runs one seed, prints its report, and writes the trace, the history, the resolved file,
/// the watch log and the scenario where asked.
fn run_one(
    options: &SimOptions,
    [trace, history, resolved, watches]: [&Option<PathBuf>; 4],
    scenario: Option<&std::path::Path>,
) -> ExitCode {
    let report = run(options);
    println!("{report}");
    let mut outputs = Vec::new();
    if let Some(path) = trace {
        outputs.push((path.clone(), report.trace.join("\n") + "\n"));
    }
    if let Some(path) = history {
        outputs.push((path.clone(), jepsen_lite::formats::write_jsonl(&report.history)));
    }
    if let Some(path) = resolved {
        outputs.push((path.clone(), report.resolved.to_jsonl()));
    }
    if let Some(path) = watches {
        let log = report.watch_log.as_ref().map(|log| log.to_jsonl()).unwrap_or_default();
        outputs.push((path.clone(), log));
    }
    if let Some(path) = scenario {
        let shown = path.display().to_string();
        match crate::scenario::from_run(&report) {
            Ok(s) => outputs
                .push((path.to_path_buf(), crate::scenario::emitted_text(&s, &report, &shown))),
            Err(e) => {
                eprintln!("raftbed sim: cannot write the run as a scenario: {e}");
                return ExitCode::from(2);
            }
        }
    }
    for (path, text) in outputs {
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("raftbed sim: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if let Some(path) = scenario {
        let bugs: String = options.bugs.names().iter().map(|b| format!(" --bug {b}")).collect();
        println!("scenario: {} (raftbed replay {}{bugs})", path.display(), path.display());
    }
    ExitCode::from(report.verdict().exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_seeds_and_faults() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("60").unwrap_err().contains("unit"));
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_seeds("3..9").unwrap(), 3..9);
        assert!(parse_seeds("9..3").unwrap_err().contains("empty range"));
        assert!(parse_faults("nonsense").unwrap_err().contains("unknown fault kind"));
        assert_eq!(
            parse_faults("crash,partition").unwrap().0,
            vec![FaultKind::Partition, FaultKind::Crash]
        );
    }
}
