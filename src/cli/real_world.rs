//! A scenario's world on real processes: one node process per scenario node (Raft, or a naive
//! system's node), every link between hosts a shaped proxy (`real_links`), and the fault
//! primitives on them — cuts, one-way cuts, latency and loss in the link table; crash as
//! SIGKILL and restart from the same data dir; pause as SIGSTOP; clock rate and jumps through
//! a Raft node's admin port.
//!
//! It blocks (admin calls run on a runtime of its own), so the timeline drives it from a
//! thread of its own, beside the clients.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::nemesis::admin;
use super::real_links::LinkTable;
use crate::faults::{Cut, Effect, Faults, Healed, Latency, NodeState};
use crate::scenario::System;

/// Where a note goes: (time since the run began, text).
pub type NoteSink = Box<dyn FnMut(Duration, &str) + Send>;

/// The node processes and the links between every host.
pub struct RealWorld {
    pub(super) dir: PathBuf,
    pub(super) system: System,
    /// Node names (`n1`..), and each node's own client address (not through a proxy).
    pub(super) nodes: Vec<String>,
    pub(super) endpoints: Vec<String>,
    /// Each node's command line, to start it again after a crash.
    pub(super) commands: Vec<Vec<String>>,
    pub(super) children: Vec<Option<Child>>,
    /// What each node is; the role poller reads it too.
    pub(super) states: Arc<Mutex<Vec<NodeState>>>,
    pub(super) table: Arc<LinkTable>,
    /// Hosts that are no node: the monitor, client groups.
    pub(super) control: Vec<String>,
    pub(super) start: Instant,
    pub(super) runtime: tokio::runtime::Runtime,
    pub(super) sink: NoteSink,
    /// Nodes whose clock runs at another rate.
    pub(super) skewed: Vec<usize>,
}

/// Starts one node process from `args`, logging to `DIR/NAME.log`.
pub fn spawn(dir: &Path, name: &str, args: &[String]) -> Result<Child, String> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("raftbed"));
    let mut command = Command::new(exe);
    command.args(args);
    super::cluster::spawn_logged(command, &dir.join(format!("{name}.log")), name)
}

impl RealWorld {
    fn set_state(&self, node: usize, state: NodeState) {
        self.states.lock().expect("states poisoned")[node] = state;
    }

    fn pid(&self, node: usize) -> Option<u32> {
        self.children[node].as_ref().map(Child::id)
    }

    fn admin(&mut self, node: usize, command: &str) -> Effect {
        let asked = self.runtime.block_on(admin(&self.dir, &self.endpoints[node], command));
        match asked {
            Ok(_) => Effect::Done,
            Err(e) => Effect::Failed(format!("{}: {e}", self.nodes[node])),
        }
    }

    /// Stops every node (SIGCONT first, so a paused one can take its SIGTERM).
    pub fn stop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            super::cluster::signal(child.id(), libc_signal::SIGCONT);
        }
        let mut children: Vec<Child> = self.children.iter_mut().filter_map(Option::take).collect();
        super::cluster::stop_children(&mut children);
    }
}

/// The signal numbers used here (Linux's, as `cluster::signal` takes them).
pub(super) mod libc_signal {
    pub const SIGKILL: i32 = 9;
    pub const SIGCONT: i32 = 18;
    pub const SIGSTOP: i32 = 19;
}

impl Faults for RealWorld {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn note(&mut self, text: &str) {
        let now = self.now();
        (self.sink)(now, text);
    }

    fn nodes(&self) -> &[String] {
        &self.nodes
    }

    fn leader(&mut self) -> Option<usize> {
        let endpoints = self.endpoints.clone();
        let up: Vec<bool> = (0..self.nodes.len()).map(|n| self.state(n) == NodeState::Up).collect();
        self.runtime.block_on(super::real_replay::leader_now(&endpoints, &up)).map(|(n, _)| n)
    }

    fn state(&self, node: usize) -> NodeState {
        self.states.lock().expect("states poisoned")[node]
    }

    fn cut(&mut self, cut: &Cut) -> Effect {
        self.table.cut(cut.pairs());
        Effect::Done
    }

    fn heal(&mut self, cut: &Cut) -> Effect {
        self.table.heal(cut.pairs());
        Effect::Done
    }

    fn isolate(&mut self, node: usize) -> (Cut, Effect) {
        let mut others: Vec<String> = self.nodes.clone();
        others.extend(self.control.iter().filter(|h| *h == crate::scenario::MONITOR_HOST).cloned());
        let cut = Cut::around(&self.nodes[node], &others);
        let effect = self.cut(&cut);
        (cut, effect)
    }

    fn crash(&mut self, node: usize) -> Effect {
        match self.state(node) {
            NodeState::Crashed => return Effect::Nothing("already down"),
            NodeState::Paused => return Effect::Nothing("paused, not crashed"),
            NodeState::Up => {}
        }
        let Some(mut child) = self.children[node].take() else {
            return Effect::Failed(format!("{}: no process", self.nodes[node]));
        };
        super::cluster::signal(child.id(), libc_signal::SIGKILL);
        let _ = child.wait();
        self.set_state(node, NodeState::Crashed);
        Effect::Done
    }

    fn restart(&mut self, node: usize) -> Effect {
        if self.state(node) != NodeState::Crashed {
            return Effect::Nothing("not down");
        }
        match spawn(&self.dir, &self.nodes[node], &self.commands[node]) {
            Ok(child) => {
                self.children[node] = Some(child);
                self.set_state(node, NodeState::Up);
                // Its clock starts true again, as a new process's does.
                self.skewed.retain(|n| *n != node);
                Effect::Done
            }
            Err(e) => Effect::Failed(e),
        }
    }

    fn pause(&mut self, node: usize) -> Effect {
        if self.state(node) != NodeState::Up {
            return Effect::Nothing("not running");
        }
        let Some(pid) = self.pid(node) else { return Effect::Nothing("no process") };
        if !super::cluster::signal(pid, libc_signal::SIGSTOP) {
            return Effect::Failed(format!("{}: SIGSTOP failed", self.nodes[node]));
        }
        self.set_state(node, NodeState::Paused);
        Effect::Done
    }

    fn resume(&mut self, node: usize) -> Effect {
        if self.state(node) != NodeState::Paused {
            return Effect::Nothing("not paused");
        }
        let Some(pid) = self.pid(node) else { return Effect::Nothing("no process") };
        if !super::cluster::signal(pid, libc_signal::SIGCONT) {
            return Effect::Failed(format!("{}: SIGCONT failed", self.nodes[node]));
        }
        self.set_state(node, NodeState::Up);
        Effect::Done
    }

    fn clock_rate(&mut self, node: usize, rate: f64) -> Effect {
        if self.system != System::Raft {
            return Effect::Nothing("the naive systems' timers are not on a node clock");
        }
        let effect = self.admin(node, &format!("rate {rate}"));
        if effect.done() {
            self.skewed.retain(|n| *n != node);
            if rate != 1.0 {
                self.skewed.push(node);
            }
        }
        effect
    }

    fn clock_jump(&mut self, node: usize, by: Duration) -> Effect {
        if self.system != System::Raft {
            return Effect::Nothing("the naive systems' timers are not on a node clock");
        }
        self.admin(node, &format!("jump {}", by.as_millis()))
    }

    fn link_loss(&mut self, a: &str, b: &str, rate: f64) -> Effect {
        self.table.set_loss(a, b, rate);
        Effect::Done
    }

    fn link_latency(&mut self, a: &str, b: &str, latency: Latency) -> Effect {
        self.table.set_latency(a, b, latency);
        Effect::Done
    }

    fn heal_all(&mut self) -> Healed {
        let mut healed = Healed { cuts: self.table.reset(), ..Healed::default() };
        for node in 0..self.nodes.len() {
            let effect = match self.state(node) {
                NodeState::Paused => {
                    healed.resumed.push(node);
                    self.resume(node)
                }
                NodeState::Crashed => {
                    healed.restarted.push(node);
                    self.restart(node)
                }
                NodeState::Up => Effect::Done,
            };
            if let Effect::Failed(why) = effect {
                healed.failed.push(why);
            }
        }
        for node in std::mem::take(&mut self.skewed) {
            if let Effect::Failed(why) = self.clock_rate(node, 1.0) {
                healed.failed.push(why);
            }
        }
        healed
    }
}
