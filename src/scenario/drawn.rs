//! From a seed to a scenario and back: `raftbed sim --emit-scenario` writes the world a run
//! drew (`[sim]`) and every fault primitive and note its nemesis applied, at the time it
//! applied it, as a scenario's timeline; `raftbed replay` of that file runs the simulator's
//! own world, workload and checks under the timeline. The world's generator is the seed's,
//! as `raftbed sim` draws it, and faults reach the world through the same primitives at the
//! same steps, so the replay is the run again, trace hash and all — and the shrinker can take
//! events away from a swarm finding while it still fails.

use super::file::{parse, to_toml};
use super::run::System;
use super::timeline::Timeline;
use super::{Action, Event, Expect, Scenario, SimWorld, Target};
use crate::faults::Applied;
use crate::sim::{CheckBudget, SimBugs, SimOptions, SimReport};

/// Replays `scenario`, which has `[sim]`, from `seed` with `bugs` switched on; `path` names
/// it in the replay command.
pub fn replay_drawn(
    scenario: &Scenario,
    path: &str,
    seed: u64,
    check: CheckBudget,
    bugs: SimBugs,
) -> SimReport {
    let world = scenario.sim.as_ref().expect("replay_drawn needs a scenario with [sim]");
    let options = SimOptions {
        nodes: world.nodes,
        spares: Some(world.spares),
        clients: world.clients,
        workload: world.workload,
        append_clients: world.append_clients,
        lock_clients: world.lock_clients,
        watchers: world.watchers,
        history_kept: world.history_kept,
        duration: scenario.duration,
        faults: Vec::new(),
        bugs,
        check,
        transport: world.transport,
        peer_transport: Some(world.peer_transport),
        swarm: None,
        required: scenario.expect.raft.clone(),
        scenario: Some(path.to_string()),
        ..SimOptions::new(seed)
    };
    let (_, _, rng) = crate::sim::draws(seed);
    crate::sim::run_world(&options, world.params.clone(), rng, |_| {
        Timeline::new(scenario, System::Raft)
    })
}

/// The scenario of a finished run: its world, and the primitives and notes applied during
/// its fault phase.
///
/// # Errors
/// A fault on a host that is not a node (the nemesis makes none), or a scenario that does
/// not read back as written.
pub fn from_run(report: &SimReport) -> Result<Scenario, String> {
    let o = &report.options;
    let nodes = SimWorld::node_names(o.nodes + o.spares());
    let index = |host: &str| {
        nodes.iter().position(|n| n == host).ok_or_else(|| {
            format!("a fault on host {host:?}, which is not a node, has no scenario form")
        })
    };
    let links = |cut: &crate::faults::Cut| -> Result<Vec<(usize, usize)>, String> {
        cut.pairs().iter().map(|(a, b)| Ok((index(a)?, index(b)?))).collect()
    };
    let mut events = Vec::new();
    for (at, applied) in &report.applied {
        let action = match applied {
            Applied::Cut(cut) => Action::Cut(links(cut)?),
            Applied::Heal(cut) => Action::Uncut(links(cut)?),
            Applied::Crash(n) => Action::Crash(*n),
            Applied::Restart(n) => Action::Restart(*n),
            Applied::Pause(n) => Action::Pause(*n),
            Applied::Resume(n) => Action::Resume(*n),
            Applied::ClockRate(n, rate) => Action::Drift(*n, *rate),
            Applied::ClockJump(n, by) => Action::Jump(*n, *by),
            Applied::LinkLoss(a, b, rate) => {
                Action::Loss(Target::Node(index(a)?), Target::Node(index(b)?), *rate)
            }
            Applied::LinkLatency(a, b, latency) => {
                Action::SetLatency(Target::Node(index(a)?), Target::Node(index(b)?), *latency)
            }
            Applied::Note(text) => Action::Note(text.clone()),
            Applied::Member(change) => Action::Member(change.clone()),
        };
        events.push(Event { at: *at, action, line: 0 });
    }
    let world = SimWorld {
        nodes: o.nodes,
        spares: o.spares(),
        clients: o.clients,
        workload: o.workload,
        append_clients: o.append_clients,
        lock_clients: o.lock_clients,
        watchers: o.watchers,
        history_kept: o.history_kept,
        params: report.params.clone(),
        transport: o.transport,
        peer_transport: o.peers(),
    };
    let verdict = match report.verdict().overall().detail() {
        Some(detail) => format!("{}: {detail}", report.headline()),
        None => report.headline().to_string(),
    };
    let bugs = o.bugs.names();
    let with = if bugs.is_empty() { String::new() } else { format!(" with {}", bugs.join(", ")) };
    let name = format!("sim-seed-{}", o.seed);
    let description = format!("The world seed {} drew and its faults{with}: {verdict}", o.seed);
    let expect = Expect { raft: o.required.clone(), ..Expect::default() };
    let scenario = Scenario::drawn(name, description, o.duration, o.seed, world, events, expect);
    // What is written must read back as the same scenario: the replay depends on it.
    let mut back = parse(&to_toml(&scenario), "emitted").map_err(|e| e.to_string())?;
    back.events.iter_mut().for_each(|e| e.line = 0);
    if back != scenario {
        return Err("the written scenario does not read back as the run's".into());
    }
    Ok(scenario)
}

/// The file `--emit-scenario` writes: a header saying where it came from and how to replay
/// it, then the scenario.
pub fn emitted_text(scenario: &Scenario, report: &SimReport, path: &str) -> String {
    let o = &report.options;
    let bugs: String = o.bugs.names().iter().map(|b| format!(" --bug {b}")).collect();
    let stopped = match report.violations.first() {
        Some(_) if report.sim_time < o.duration => format!(
            "# The run stopped at {} (a safety check failed), and the timeline ends there:\n\
             # a run without the bug applies the whole schedule.\n",
            super::show(report.sim_time)
        ),
        _ => String::new(),
    };
    format!(
        "# Written by `{}`: the world seed {} drew ([sim]) and the\n\
         # {} fault primitives and notes its nemesis applied ([[event]]), when it applied them.\n\
         # `raftbed replay {path}{bugs}` runs the simulator's own world and checks under this\n\
         # timeline: the run again (trace-hash {:016x}). Add --shrink to take away the events\n\
         # the outcome does not need. A --bug changes only the code under test, so it is not\n\
         # part of the file.\n{stopped}{}",
        o.replay_command(),
        o.seed,
        scenario.events.len(),
        report.trace_hash,
        to_toml(scenario)
    )
}
