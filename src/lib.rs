//! raftbed: a Raft consensus testbed with split-brain detection.
//!
//! ```text
//!   client ──> kv service ──> driver ──> raft::Node (sans-IO) ──> Ready
//!                               │                                  │
//!                               ├── storage (WAL: std::fs | sim fs) <┤ 1. persist
//!                               ├── transport (peers)              <─┤ 2. send
//!                               └── state machine (kv)             <─┘ 3. apply, 4. advance
//! ```
//!
//! Modules:
//! - [`raft`]: the Raft core, a pure state machine with no IO.
//! - [`sim`]: the simulated world under turmoil; [`faults`]: the fault primitives every fault
//!   lowers to; [`verdict`]: held, violated or undecided, and the exit codes.
//! - [`resolved`]: the fates of a history's writes, read from the committed log.
//! - [`transport`]: the wire form of peer messages and its conversion to core types.
//! - [`cli`]: the `raftbed` command line.

#[cfg(not(tokio_unstable))]
compile_error!(
    "raftbed must be built with `--cfg tokio_unstable` (set in .cargo/config.toml): without it \
     turmoil cannot seed tokio and simulations stop replaying. A RUSTFLAGS environment variable \
     replaces the config's flags; unset it or add `--cfg tokio_unstable` to it."
);

pub mod cli;
pub mod client;
pub mod clock;
pub mod demo;
pub mod faults;
pub mod kv;
pub mod naive;
pub mod proto;
pub mod raft;
pub mod resolved;
pub mod rng;
pub mod scenario;
pub mod server;
pub mod sim;
pub mod storage;
pub mod transport;
pub mod verdict;
