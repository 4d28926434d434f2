//! The `raftbed` command line. Each subcommand lives in its own file; this one parses and
//! dispatches.

mod bench;
mod bench_watch;
mod check;
mod check_txn;
pub mod cluster;
mod jepsen;
mod jepsen_watch;
mod join;
mod kv;
mod members;
mod monitor;
mod nemesis;
pub mod node;
mod node_naive;
mod real;
mod real_links;
mod real_replay;
mod real_report;
mod real_world;
mod replay;
mod replay_compare;
mod replay_drawn;
mod restore;
pub mod sim;
mod sweep;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A Raft consensus testbed with split-brain detection.
#[derive(Debug, Parser)]
#[command(name = "raftbed", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Five Raft cores on an in-memory network: partition the leader away, heal, and check
    /// that no acknowledged write was lost and every node agrees.
    Demo {
        /// Seeds the election timeouts.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Check a history for linearizability (exit 0 yes, 1 no, 2 unknown, 3 bad input).
    Check(check::CheckArgs),
    /// Run a deterministic simulation of a cluster under faults (or sweep seeds).
    Sim(Box<sim::SimArgs>),
    /// Talk to a running cluster: put, get, del, cas, lock.
    Kv(kv::KvArgs),
    /// Load a cluster (raftbed or etcd) through the etcd API: put, get-l, get-lease, get-s,
    /// or the failover probe.
    Bench(bench::BenchArgs),
    /// Run one node process (`cluster up` starts several).
    Node(node::NodeArgs),
    /// Run naive-failover's monitor for `raftbed node --system naive-failover` processes.
    Monitor(monitor::MonitorArgs),
    /// A local cluster of node processes: up, down, status.
    Cluster(cluster::ClusterArgs),
    /// Inject a fault into a running `raftbed cluster`: partition, isolate-leader, heal, kill,
    /// restart, pause, resume, clock.
    Nemesis(nemesis::NemesisArgs),
    /// A Jepsen-style run against real node processes: workload, faults, history, checker,
    /// detector, report.
    Test(jepsen::TestArgs),
    /// Join the JSON lines of a sweep's shards (`sim --shard I/N --jsonl F`) into one table,
    /// the failing seeds first.
    Merge(sweep::MergeArgs),
    /// Replay a scenario file against Raft and naive failover, side by side, and report what
    /// the split-brain detector found.
    Replay(replay::ReplayArgs),
}

/// A panic inside a simulated node is reported as a finding, with its message; keep the
/// message off the terminal, where it would tear the progress bar (`RAFTBED_SHOW_PANICS=1`
/// shows it there too).
fn quiet_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        crate::sim::note_panic(info);
        if std::env::var_os("RAFTBED_SHOW_PANICS").is_some() {
            default(info);
        }
    }));
}

/// Parses the command line, runs it, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // `check` reserves exit 2 for "unknown"; a bad command line is unusable input.
            let command = std::env::args().nth(1);
            if command.as_deref() == Some("check") && err.use_stderr() {
                let _ = err.print();
                return ExitCode::from(check::EXIT_MALFORMED);
            }
            err.exit();
        }
    };
    match cli.command {
        Command::Demo { seed } => {
            let report = crate::demo::run(seed);
            print!("{}", report.text);
            if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Command::Check(args) => check::run(&args),
        Command::Sim(args) => sim::run_sim(&args),
        Command::Merge(args) => sweep::merge(&args),
        Command::Kv(args) => kv::run(&args),
        Command::Replay(args) => replay::run(&args),
        Command::Node(args) => node::run(&args),
        Command::Monitor(args) => monitor::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Test(args) => jepsen::run(&args),
        Command::Nemesis(args) => nemesis::run(&args),
        Command::Cluster(args) => cluster::run(&args),
    }
}

/// A single-threaded runtime for a command's blocking steps, or why none could start.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}
