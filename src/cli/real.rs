//! The fault primitives on real node processes (the cluster `raftbed cluster up` or `raftbed
//! test` started): cuts enforced by each node's transport through its admin port, SIGKILL and
//! a restart on the same data dir, SIGSTOP and SIGCONT, clock jumps through the admin port.
//!
//! Cuts are kept as desired state, counted like the simulator's, and each node is told the
//! peers it must ignore whenever that set changes; a node that is paused or down is told when
//! it comes back, so no call ever waits on a node that cannot answer. A node enforces a cut
//! both ways, so a one-way cut is refused. Membership changes go to the leader's core through
//! its admin port, as the simulator's go through its driver. Clock rates, link loss and latency
//! fail here, saying so: a scenario replayed on real processes (`real_world.rs`) has them, through
//! its shaping proxies and the admin port's `rate`.
//!
//! It blocks (on a runtime of its own), so it runs on a thread of its own, beside the clients.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::nemesis::{Fault, admin, apply};
use crate::client::Client;
use crate::faults::{Cut, Effect, Faults, Healed, Latency, NodeState};
use crate::raft::{Membership, MembershipChange, NodeId};
use crate::transport::net::TokioNet;

/// Where a note goes: (time since the run began, text).
pub type NoteSink = Box<dyn FnMut(Duration, &str) + Send>;

/// A real cluster as a fault backend.
pub struct RealCluster {
    dir: PathBuf,
    endpoints: Vec<String>,
    nodes: Vec<String>,
    start: Instant,
    runtime: tokio::runtime::Runtime,
    states: Vec<NodeState>,
    /// Directed cuts between node indexes, counted.
    cuts: BTreeMap<(usize, usize), u32>,
    /// What each node was last told to ignore.
    told: Vec<BTreeSet<usize>>,
    sink: NoteSink,
    /// Nodes running as spares (members of no configuration) not yet added.
    spares: Vec<usize>,
}

impl RealCluster {
    /// The cluster in `dir` with these client endpoints, timed from `start`.
    ///
    /// # Errors
    /// If its runtime cannot start.
    pub fn new(
        dir: PathBuf,
        endpoints: Vec<String>,
        start: Instant,
        sink: NoteSink,
    ) -> Result<RealCluster, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the nemesis runtime: {e}"))?;
        let n = endpoints.len();
        Ok(RealCluster {
            dir,
            nodes: (1..=n).map(|i| format!("n{i}")).collect(),
            endpoints,
            start,
            runtime,
            states: vec![NodeState::Up; n],
            cuts: BTreeMap::new(),
            told: vec![BTreeSet::new(); n],
            sink,
            spares: Vec::new(),
        })
    }

    /// Nodes `voters..` run as spares, to be added by membership faults.
    pub fn with_spares(mut self, voters: usize) -> RealCluster {
        self.spares = (voters..self.nodes.len()).collect();
        self
    }

    fn index(&self, host: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n == host)
    }

    /// The peers node `a` must ignore: every node it has a cut with, either way.
    fn desired(&self, a: usize) -> BTreeSet<usize> {
        self.cuts.keys().filter(|(x, _)| *x == a).map(|(_, y)| *y).collect()
    }

    /// Tells every running node whose set changed; returns who could not be told.
    fn push(&mut self) -> Vec<String> {
        let mut failed = Vec::new();
        for a in 0..self.nodes.len() {
            let want = self.desired(a);
            if self.states[a] != NodeState::Up || want == self.told[a] {
                continue;
            }
            let list: Vec<String> = want.iter().map(|b| (b + 1).to_string()).collect();
            let command = format!("block {}", list.join(","));
            match self.runtime.block_on(admin(&self.dir, &self.endpoints[a], &command)) {
                Ok(_) => self.told[a] = want,
                Err(e) => failed.push(format!("{}: {e}", self.nodes[a])),
            }
        }
        failed
    }

    fn pushed(&mut self) -> Effect {
        let failed = self.push();
        if failed.is_empty() { Effect::Done } else { Effect::Failed(failed.join("; ")) }
    }

    /// The directed node pairs of `cut`, if it is between nodes and symmetric.
    fn node_pairs(&self, cut: &Cut) -> Result<Vec<(usize, usize)>, String> {
        let mut pairs = Vec::new();
        for (a, b) in cut.pairs() {
            match (self.index(a), self.index(b)) {
                (Some(x), Some(y)) => pairs.push((x, y)),
                _ => return Err(format!("{a}-{b}: real clusters cut links between nodes only")),
            }
        }
        if pairs.iter().any(|(x, y)| !pairs.contains(&(*y, *x))) {
            return Err("a real node cuts a link both ways: one-way cuts are not supported".into());
        }
        Ok(pairs)
    }

    fn signal(&mut self, node: usize, fault: Fault, to: NodeState) -> Effect {
        match self.runtime.block_on(apply(&self.dir, &fault)) {
            Ok(_) => {
                self.states[node] = to;
                Effect::Done
            }
            Err(e) => Effect::Failed(e),
        }
    }

    /// After a restart the node ignores no one; tell it the current cuts once its admin port
    /// answers.
    fn retell(&mut self, node: usize) -> Vec<String> {
        self.told[node] = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let failed = self.push();
            if failed.is_empty() || Instant::now() > deadline {
                return failed;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Faults for RealCluster {
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
        let up: Vec<usize> =
            (0..self.nodes.len()).filter(|n| self.states[*n] == NodeState::Up).collect();
        let endpoints = self.endpoints.clone();
        self.runtime.block_on(async move {
            let mut client = Client::new(TokioNet, endpoints, 0);
            client.timeout = Duration::from_millis(300);
            for _ in 0..10 {
                for &i in &up {
                    if let Ok(status) = client.status(i).await
                        && status.leader != 0
                    {
                        return Some(status.leader as usize - 1);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None
        })
    }

    fn state(&self, node: usize) -> NodeState {
        self.states.get(node).copied().unwrap_or(NodeState::Crashed)
    }

    fn cut(&mut self, cut: &Cut) -> Effect {
        let pairs = match self.node_pairs(cut) {
            Ok(p) => p,
            Err(e) => return Effect::Failed(e),
        };
        for pair in pairs {
            *self.cuts.entry(pair).or_insert(0) += 1;
        }
        self.pushed()
    }

    fn heal(&mut self, cut: &Cut) -> Effect {
        let Ok(pairs) = self.node_pairs(cut) else { return Effect::Nothing("never applied") };
        for pair in pairs {
            if let Some(count) = self.cuts.get_mut(&pair) {
                *count -= 1;
                if *count == 0 {
                    self.cuts.remove(&pair);
                }
            }
        }
        self.pushed()
    }

    fn isolate(&mut self, node: usize) -> (Cut, Effect) {
        let Some(name) = self.nodes.get(node).cloned() else {
            return (Cut::default(), Effect::Nothing("no such node"));
        };
        let cut = Cut::around(&name, &self.nodes.clone());
        let effect = self.cut(&cut);
        (cut, effect)
    }

    fn crash(&mut self, node: usize) -> Effect {
        match self.state(node) {
            NodeState::Up if node < self.nodes.len() => {
                let fault = Fault::Kill { node: self.nodes[node].clone() };
                self.signal(node, fault, NodeState::Crashed)
            }
            NodeState::Up => Effect::Nothing("no such node"),
            NodeState::Crashed => Effect::Nothing("already down"),
            NodeState::Paused => Effect::Nothing("paused"),
        }
    }

    fn restart(&mut self, node: usize) -> Effect {
        if self.state(node) != NodeState::Crashed || node >= self.nodes.len() {
            return Effect::Nothing("not down");
        }
        let fault = Fault::Restart { node: self.nodes[node].clone() };
        match self.signal(node, fault, NodeState::Up) {
            Effect::Done => {
                let failed = self.retell(node);
                if failed.is_empty() { Effect::Done } else { Effect::Failed(failed.join("; ")) }
            }
            other => other,
        }
    }

    fn pause(&mut self, node: usize) -> Effect {
        match self.state(node) {
            NodeState::Up if node < self.nodes.len() => {
                let fault = Fault::Pause { node: self.nodes[node].clone() };
                self.signal(node, fault, NodeState::Paused)
            }
            NodeState::Up => Effect::Nothing("no such node"),
            NodeState::Crashed => Effect::Nothing("down"),
            NodeState::Paused => Effect::Nothing("already paused"),
        }
    }

    fn resume(&mut self, node: usize) -> Effect {
        if self.state(node) != NodeState::Paused {
            return Effect::Nothing("not paused");
        }
        let fault = Fault::Resume { node: self.nodes[node].clone() };
        match self.signal(node, fault, NodeState::Up) {
            Effect::Done => self.pushed(),
            other => other,
        }
    }

    fn clock_rate(&mut self, _node: usize, _rate: f64) -> Effect {
        Effect::Failed("a real node's clock runs at the machine's rate: only jumps".into())
    }

    fn clock_jump(&mut self, node: usize, by: Duration) -> Effect {
        let Some(name) = self.nodes.get(node).cloned() else {
            return Effect::Nothing("no such node");
        };
        let fault = Fault::Clock { node: name, jump: format!("+{}ms", by.as_millis()) };
        match self.runtime.block_on(apply(&self.dir, &fault)) {
            Ok(_) => Effect::Done,
            Err(e) => Effect::Failed(e),
        }
    }

    fn link_loss(&mut self, _a: &str, _b: &str, _rate: f64) -> Effect {
        Effect::Failed("link loss is not implemented on real clusters".into())
    }

    fn link_latency(&mut self, _a: &str, _b: &str, _latency: Latency) -> Effect {
        Effect::Failed("link latency is not implemented on real clusters".into())
    }

    fn heal_all(&mut self) -> Healed {
        let mut healed = Healed { cuts: !self.cuts.is_empty(), ..Healed::default() };
        self.cuts.clear();
        for node in 0..self.nodes.len() {
            let (effect, list) = match self.states[node] {
                NodeState::Paused => (self.resume(node), &mut healed.resumed),
                NodeState::Crashed => (self.restart(node), &mut healed.restarted),
                NodeState::Up => continue,
            };
            match effect {
                Effect::Failed(e) => healed.failed.push(format!("{}: {e}", self.nodes[node])),
                _ => list.push(node),
            }
        }
        healed.failed.extend(self.push());
        healed
    }

    fn change_membership(&mut self, change: MembershipChange) -> Effect {
        let command = match &change {
            MembershipChange::AddLearner(id) => format!("change learner {}", id.0),
            MembershipChange::AddVoter(id) => format!("change voter {}", id.0),
            MembershipChange::Remove(id) => format!("change remove {}", id.0),
            other => return Effect::Failed(format!("{other}: not asked of real clusters")),
        };
        let start = Instant::now();
        loop {
            let answer = match self.leader() {
                Some(leader) => {
                    let endpoint = self.endpoints[leader].clone();
                    self.runtime.block_on(admin(&self.dir, &endpoint, &command))
                }
                None => Err("no leader".to_string()),
            };
            match answer {
                Ok(appended) => {
                    self.note(&format!("{change}: {}", appended.trim_start_matches("ok ")));
                    return Effect::Done;
                }
                Err(e) if start.elapsed() > Duration::from_secs(10) => {
                    return Effect::Failed(format!("{change}: {e}"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn membership(&self) -> Option<Membership> {
        let up: Vec<usize> =
            (0..self.nodes.len()).filter(|n| self.states[*n] == NodeState::Up).collect();
        let endpoints = self.endpoints.clone();
        let list = self.runtime.block_on(async move {
            let mut client = Client::new(TokioNet, endpoints, 0);
            client.timeout = Duration::from_millis(500);
            client.attempts = 1;
            for i in up {
                client.prefer(i);
                if let Ok(list) = client.member_list().await {
                    return Some(list);
                }
            }
            None
        })?;
        let mut membership = Membership::default();
        for member in list.members {
            let set =
                if member.is_learner { &mut membership.learners } else { &mut membership.voters };
            set.insert(NodeId(member.id));
        }
        Some(membership)
    }

    fn fresh_node(&mut self) -> Option<usize> {
        (!self.spares.is_empty()).then(|| self.spares.remove(0))
    }
}
