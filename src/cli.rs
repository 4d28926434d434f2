//! The `raftbed` command line.

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
}

/// Parses the command line, runs it, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo { seed } => {
            let report = crate::demo::run(seed);
            print!("{}", report.text);
            if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
    }
}
