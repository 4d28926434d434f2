//! One bounded queue per peer, each drained by a sender task dialled at the peer's address:
//! what the framed and the gRPC peer transports share. A peer whose address changes (a
//! configuration entry moved it, or added it) gets a new task; the old one ends with its queue.

use std::collections::BTreeMap;
use std::rc::Rc;

use tokio::sync::mpsc;

use crate::raft::NodeId;

/// Starts a sender task to an address; answers its queue.
pub type Dial<T> = Rc<dyn Fn(&str) -> mpsc::Sender<T>>;

/// The queues, by peer, with the address each task was dialled at.
pub struct PeerQueues<T> {
    queues: BTreeMap<NodeId, (String, mpsc::Sender<T>)>,
    dial: Dial<T>,
}

impl<T> std::fmt::Debug for PeerQueues<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addrs: BTreeMap<&NodeId, &String> =
            self.queues.iter().map(|(id, (addr, _))| (id, addr)).collect();
        f.debug_struct("PeerQueues").field("addrs", &addrs).finish_non_exhaustive()
    }
}

impl<T> PeerQueues<T> {
    /// Queues to `addrs`, each task started by `dial`.
    pub fn new(dial: Dial<T>, addrs: &BTreeMap<NodeId, String>) -> PeerQueues<T> {
        let mut queues = PeerQueues { queues: BTreeMap::new(), dial };
        queues.set_addrs(addrs);
        queues
    }

    /// A task for every peer of `addrs` that has none at that address; peers not listed keep
    /// theirs.
    pub fn set_addrs(&mut self, addrs: &BTreeMap<NodeId, String>) {
        for (id, addr) in addrs {
            if self.queues.get(id).is_none_or(|(known, _)| known != addr) {
                self.queues.insert(*id, (addr.clone(), (self.dial)(addr)));
            }
        }
    }

    /// The queue to `peer`, if it has one.
    pub fn get(&self, peer: NodeId) -> Option<&mpsc::Sender<T>> {
        self.queues.get(&peer).map(|(_, queue)| queue)
    }
}
