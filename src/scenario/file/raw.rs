//! The scenario file as TOML spells it, before validation: every value that can be wrong
//! keeps its span, so an error names its line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileScenario {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) description: String,
    pub(super) duration: Spanned<String>,
    pub(super) leader: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) seed: u64,
    #[serde(default)]
    pub(super) timing: Option<Spanned<FileTiming>>,
    #[serde(default)]
    pub(super) raft: Option<Spanned<FileRaft>>,
    #[serde(rename = "site")]
    pub(super) sites: Option<Vec<Spanned<FileSite>>>,
    #[serde(default, rename = "link")]
    pub(super) links: Vec<Spanned<FileLink>>,
    #[serde(default, rename = "clients")]
    pub(super) clients: Vec<Spanned<FileClients>>,
    #[serde(default, rename = "locks")]
    pub(super) locks: Vec<Spanned<FileLocks>>,
    #[serde(default, rename = "event")]
    pub(super) events: Vec<Spanned<FileEvent>>,
    #[serde(default)]
    pub(super) expect: Option<FileExpect>,
    #[serde(default)]
    pub(super) sim: Option<Spanned<FileSim>>,
}

/// `[sim]`: a world `raftbed sim` drew (`--emit-scenario`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSim {
    pub(super) nodes: Spanned<i64>,
    pub(super) clients: Spanned<i64>,
    /// Absent in files written before the append workload: kv, and no append clients.
    pub(super) workload: Option<Spanned<String>>,
    pub(super) append_clients: Option<Spanned<i64>>,
    /// Absent in files written before membership faults: none.
    pub(super) spares: Option<Spanned<i64>>,
    pub(super) lock_clients: Spanned<i64>,
    pub(super) watchers: Spanned<i64>,
    pub(super) history_kept: Spanned<i64>,
    pub(super) tick: Spanned<String>,
    pub(super) election_ticks: Spanned<i64>,
    pub(super) heartbeat_ticks: Spanned<i64>,
    pub(super) latency_max: Spanned<String>,
    pub(super) think_max: Spanned<String>,
    pub(super) keys: Spanned<i64>,
    pub(super) attempts: Spanned<i64>,
    pub(super) pre_vote: bool,
    pub(super) check_quorum: bool,
    pub(super) lease_reads: bool,
    pub(super) max_entries_per_message: Spanned<i64>,
    pub(super) snapshot_every: Spanned<i64>,
    pub(super) transport: Spanned<String>,
    pub(super) peer_transport: Spanned<String>,
}

/// `[expect]`: the situations each system's run must reach.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileExpect {
    pub(super) raft: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(rename = "naive-failover")]
    pub(super) naive_failover: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(rename = "naive-failover-fenced")]
    pub(super) naive_failover_fenced: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLocks {
    pub(super) name: Spanned<String>,
    pub(super) site: Spanned<String>,
    #[serde(default = "one")]
    pub(super) count: Spanned<i64>,
    pub(super) ttl: Option<Spanned<String>>,
    pub(super) pause_chance: Option<Spanned<f64>>,
    pub(super) talk_to: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTiming {
    pub(super) tick: Option<Spanned<String>>,
    pub(super) election_timeout: Option<Spanned<String>>,
    pub(super) heartbeat: Option<Spanned<String>>,
    pub(super) lease: Option<bool>,
    pub(super) drift_margin: Option<Spanned<String>>,
    pub(super) request_timeout: Option<Spanned<String>>,
    pub(super) failover_after: Option<Spanned<String>>,
    pub(super) monitor_interval: Option<Spanned<String>>,
    pub(super) monitor_site: Option<Spanned<String>>,
    pub(super) default_latency: Option<Spanned<String>>,
}

/// `[raft]`: Raft's options beyond its timers.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRaft {
    pub(super) pre_vote: Option<bool>,
    pub(super) check_quorum: Option<bool>,
    pub(super) max_entries_per_message: Option<Spanned<i64>>,
    pub(super) snapshot_every: Option<Spanned<i64>>,
    pub(super) spares: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSite {
    pub(super) name: Spanned<String>,
    pub(super) nodes: Spanned<Vec<String>>,
    pub(super) latency: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLink {
    pub(super) between: Spanned<Vec<String>>,
    pub(super) latency: Option<Spanned<String>>,
    pub(super) loss: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileClients {
    pub(super) name: Spanned<String>,
    pub(super) site: Spanned<String>,
    #[serde(default = "one")]
    pub(super) count: Spanned<i64>,
    pub(super) rate: Option<Spanned<f64>>,
    pub(super) mix: Option<Spanned<BTreeMap<String, f64>>>,
    pub(super) keys: Option<Spanned<i64>>,
    pub(super) talk_to: Option<Spanned<Vec<String>>>,
    pub(super) consistency: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<String>>,
}

pub(super) fn one() -> Spanned<i64> {
    Spanned::new(0..0, 1)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileEvent {
    pub(super) at: Spanned<String>,
    pub(super) partition: Option<Spanned<Vec<Vec<String>>>>,
    pub(super) cut: Option<Spanned<Vec<Vec<String>>>>,
    pub(super) uncut: Option<Spanned<Vec<Vec<String>>>>,
    pub(super) one_way: Option<bool>,
    pub(super) heal: Option<bool>,
    pub(super) isolate_leader: Option<bool>,
    pub(super) crash: Option<Spanned<String>>,
    pub(super) restart: Option<Spanned<String>>,
    pub(super) pause: Option<Spanned<String>>,
    pub(super) resume: Option<Spanned<String>>,
    pub(super) node: Option<Spanned<String>>,
    pub(super) drift: Option<Spanned<f64>>,
    pub(super) jump: Option<Spanned<String>>,
    pub(super) loss: Option<Spanned<f64>>,
    pub(super) latency: Option<Spanned<String>>,
    pub(super) between: Option<Spanned<Vec<String>>>,
    pub(super) note: Option<Spanned<String>>,
    pub(super) add: Option<Spanned<String>>,
    pub(super) learner: Option<bool>,
    pub(super) promote: Option<Spanned<String>>,
    pub(super) remove: Option<Spanned<String>>,
    pub(super) replace: Option<Spanned<String>>,
    pub(super) with: Option<Spanned<String>>,
}
