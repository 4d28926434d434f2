//! An in-memory cluster of cores: a message queue for a network and a vector for a disk, driven
//! by hand. The datadriven interaction tests, the core benchmark and `raftbed demo` run on it.
//!
//! Storage here is synchronous and perfect: what a `Ready` says to persist is persisted before
//! its messages are queued, exactly the order the contract asks for. A crash drops the node and
//! keeps its storage; a restart rebuilds the node from storage and its state machine from the
//! snapshot plus the committed log.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use super::{
    Config, Entry, HardState, LogIndex, Message, Node, NodeId, Ready, Restored, Role, Snapshot,
};

/// What one node has made durable.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    /// The last persisted hard state.
    pub hard_state: HardState,
    /// The last persisted snapshot.
    pub snapshot: Option<Snapshot>,
    /// Entries after the snapshot.
    pub entries: Vec<Entry>,
}

impl MemStorage {
    /// Persists a `Ready`'s snapshot, entries and hard state (duty 1).
    pub fn persist(&mut self, ready: &Ready) {
        if let Some(snapshot) = &ready.snapshot {
            self.entries.clear();
            self.snapshot = Some(snapshot.clone());
        }
        if let Some(first) = ready.entries.first() {
            let base = self.snapshot.as_ref().map_or(0, |s| s.meta.index.0);
            let keep = (first.index.0 - base - 1) as usize;
            self.entries.truncate(keep);
            self.entries.extend(ready.entries.iter().cloned());
        }
        if let Some(hard_state) = ready.hard_state {
            self.hard_state = hard_state;
        }
    }

    /// Records a compaction made by the node (the driver's job after `Node::compact`).
    pub fn compact(&mut self, snapshot: Snapshot) {
        let base = self.snapshot.as_ref().map_or(0, |s| s.meta.index.0);
        let drop = (snapshot.meta.index.0 - base) as usize;
        self.entries.drain(..drop.min(self.entries.len()));
        self.snapshot = Some(snapshot);
    }

    /// What a restarting node gets back. The state machine is rebuilt from the snapshot, so it
    /// stands at the snapshot's index.
    pub fn restored(&self) -> Restored {
        Restored {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
            applied: self.snapshot.as_ref().map_or(LogIndex(0), |s| s.meta.index),
        }
    }
}

/// A state machine that remembers a digest of every command applied, so two nodes can be
/// compared at a glance, and the last few commands for display.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DigestMachine {
    /// The last applied index.
    pub applied: LogIndex,
    /// FNV-1a over every applied command, in order.
    pub digest: u64,
    /// How many non-empty commands were applied.
    pub commands: u64,
}

impl DigestMachine {
    /// Applies one committed entry.
    ///
    /// # Panics
    /// If entries arrive out of order.
    pub fn apply(&mut self, entry: &Entry) {
        assert_eq!(entry.index, self.applied.next(), "applied out of order");
        self.applied = entry.index;
        if entry.data.is_empty() || entry.kind == super::EntryKind::Config {
            return;
        }
        self.commands += 1;
        let mut hash = if self.digest == 0 { 0xcbf2_9ce4_8422_2325 } else { self.digest };
        for byte in entry.data.iter().chain(&entry.index.0.to_le_bytes()) {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.digest = hash;
    }

    /// The snapshot form: 24 bytes.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(24);
        out.extend_from_slice(&self.applied.0.to_le_bytes());
        out.extend_from_slice(&self.digest.to_le_bytes());
        out.extend_from_slice(&self.commands.to_le_bytes());
        Bytes::from(out)
    }

    /// Restores from `encode`'s output.
    ///
    /// # Panics
    /// If `data` is not 24 bytes.
    pub fn decode(data: &[u8]) -> DigestMachine {
        assert_eq!(data.len(), 24, "digest snapshot must be 24 bytes");
        let word =
            |i: usize| u64::from_le_bytes(data[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        DigestMachine { applied: LogIndex(word(0)), digest: word(1), commands: word(2) }
    }
}

/// One member of a `MemCluster`.
#[derive(Debug)]
pub struct MemNode {
    /// The core; `None` while crashed.
    pub node: Option<Node>,
    /// Its durable state, which survives crashes.
    pub storage: MemStorage,
    /// Its state machine (rebuilt on restart).
    pub machine: DigestMachine,
    /// Its configuration, reused on restart.
    pub config: Config,
}

impl MemNode {
    /// A running node with empty storage, configured by `config`.
    fn fresh(config: Config) -> MemNode {
        let node = Node::new(config.clone(), Restored::default()).expect("valid test config");
        MemNode {
            node: Some(node),
            storage: MemStorage::default(),
            machine: DigestMachine::default(),
            config,
        }
    }
}

/// What happened to a message on delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Stepped into the receiver.
    Delivered,
    /// Dropped by a partition.
    Partitioned,
    /// Dropped: the receiver is crashed.
    Crashed,
}

/// A cluster of cores over an in-memory network.
#[derive(Debug)]
pub struct MemCluster {
    /// The members, by id.
    pub nodes: BTreeMap<NodeId, MemNode>,
    /// Messages sent and not yet delivered, in send order.
    pub in_flight: VecDeque<Message>,
    /// Directed links that drop messages.
    pub cut: BTreeSet<(NodeId, NodeId)>,
}

impl MemCluster {
    /// `n` fresh nodes with ids 1..=n; `configure` adjusts each node's config.
    pub fn new(n: u64, configure: impl Fn(&mut Config)) -> MemCluster {
        let voters: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let mut nodes = BTreeMap::new();
        for id in &voters {
            let mut config = Config::new(*id, voters.clone());
            configure(&mut config);
            nodes.insert(*id, MemNode::fresh(config));
        }
        MemCluster { nodes, in_flight: VecDeque::new(), cut: BTreeSet::new() }
    }

    /// Starts a fresh node `id` that joins the cluster: configured as the others, but for its
    /// id, with the others' bootstrap voters (so it waits for the leader, and never campaigns
    /// until a configuration makes it a voter).
    ///
    /// # Panics
    /// If `id` is taken or the cluster is empty.
    pub fn add_node(&mut self, id: NodeId) {
        assert!(!self.nodes.contains_key(&id), "{id} exists");
        let template = self.nodes.values().next().expect("a cluster to join");
        let member = MemNode::fresh(Config { id, ..template.config.clone() });
        self.nodes.insert(id, member);
    }

    /// The running core of `id`.
    ///
    /// # Panics
    /// If `id` is unknown or crashed.
    pub fn node(&mut self, id: NodeId) -> &mut Node {
        self.nodes
            .get_mut(&id)
            .and_then(|m| m.node.as_mut())
            .unwrap_or_else(|| panic!("{id} is not running"))
    }

    /// Runs one `Ready` of `id` through persist, send, apply, advance. Returns it, or `None` if
    /// the node had nothing to do or is crashed.
    pub fn process_ready(&mut self, id: NodeId) -> Option<Ready> {
        let member = self.nodes.get_mut(&id)?;
        let node = member.node.as_mut()?;
        let ready = node.ready()?;
        member.storage.persist(&ready);
        self.in_flight.extend(ready.messages.iter().cloned());
        if let Some(snapshot) = &ready.snapshot {
            member.machine = DigestMachine::decode(&snapshot.data);
        }
        for entry in &ready.committed_entries {
            member.machine.apply(entry);
        }
        node.advance();
        Some(ready)
    }

    /// Delivers queued messages addressed to any of `to` (every node if empty), in send order.
    /// Returns each message with its fate.
    pub fn deliver(&mut self, to: &[NodeId]) -> Vec<(Message, Delivery)> {
        self.deliver_matching(|m| to.is_empty() || to.contains(&m.to))
    }

    /// Removes and returns the queued messages that `select` picks, keeping the rest in order.
    pub fn take_matching(&mut self, select: impl Fn(&Message) -> bool) -> Vec<Message> {
        let mut selected = Vec::new();
        let mut kept = VecDeque::with_capacity(self.in_flight.len());
        for message in self.in_flight.drain(..) {
            if select(&message) { selected.push(message) } else { kept.push_back(message) }
        }
        self.in_flight = kept;
        selected
    }

    /// Delivers the queued messages that `select` picks, in send order.
    pub fn deliver_matching(
        &mut self,
        select: impl Fn(&Message) -> bool,
    ) -> Vec<(Message, Delivery)> {
        let selected = self.take_matching(select);
        let mut out = Vec::with_capacity(selected.len());
        for message in selected {
            let fate = if self.cut.contains(&(message.from, message.to)) {
                Delivery::Partitioned
            } else if let Some(node) = self.nodes.get_mut(&message.to).and_then(|m| m.node.as_mut())
            {
                node.step(message.clone()).expect("routed by id");
                Delivery::Delivered
            } else {
                Delivery::Crashed
            };
            out.push((message, fate));
        }
        out
    }

    /// Processes readies and delivers messages until the cluster is quiet. Returns the number of
    /// rounds.
    pub fn stabilize(&mut self) -> usize {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let mut rounds = 0;
        loop {
            let mut busy = false;
            for id in &ids {
                while self.process_ready(*id).is_some() {
                    busy = true;
                }
            }
            if !self.in_flight.is_empty() {
                self.deliver(&[]);
                busy = true;
            }
            if !busy {
                return rounds;
            }
            rounds += 1;
        }
    }

    /// Ticks `id` once (no-op if crashed).
    pub fn tick(&mut self, id: NodeId) {
        if let Some(node) = self.nodes.get_mut(&id).and_then(|m| m.node.as_mut()) {
            node.tick();
        }
    }

    /// Ticks every running node once.
    pub fn tick_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.tick(id);
        }
    }

    /// Crashes `id`: the core and its state machine are lost, its storage stays.
    pub fn crash(&mut self, id: NodeId) {
        let member = self.nodes.get_mut(&id).expect("known node");
        member.node = None;
        member.machine = DigestMachine::default();
    }

    /// Restarts a crashed `id` from its storage.
    pub fn restart(&mut self, id: NodeId) {
        let member = self.nodes.get_mut(&id).expect("known node");
        let restored = member.storage.restored();
        member.machine = restored
            .snapshot
            .as_ref()
            .map_or_else(DigestMachine::default, |s| DigestMachine::decode(&s.data));
        member.node =
            Some(Node::new(member.config.clone(), restored).expect("storage is consistent"));
    }

    /// Compacts `id`'s log through its applied index, with its state machine as the snapshot.
    pub fn compact(&mut self, id: NodeId, index: LogIndex) -> Result<(), super::Error> {
        let member = self.nodes.get_mut(&id).expect("known node");
        let node = member.node.as_mut().expect("running node");
        assert_eq!(member.machine.applied, node.log().applied());
        // The machine is at `applied`; compaction below that would need an older state.
        if index != member.machine.applied {
            return Err(super::Error::Compaction {
                index,
                applied: member.machine.applied,
                compacted: node.log().snapshot().index,
            });
        }
        node.compact(index, member.machine.encode())?;
        member.storage.compact(node.snapshot().expect("just compacted").clone());
        Ok(())
    }

    /// Cuts every link between the groups, in both directions.
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) {
        for (i, a) in groups.iter().enumerate() {
            for b in &groups[i + 1..] {
                for x in a {
                    for y in b {
                        self.cut.insert((*x, *y));
                        self.cut.insert((*y, *x));
                    }
                }
            }
        }
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// The leader with the highest term among running nodes.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter_map(|m| m.node.as_ref())
            .filter(|n| n.role() == Role::Leader)
            .max_by_key(|n| n.term())
            .map(|n| n.id())
    }
}
