//! The simulator's view of each node (the probe its driver calls, feeding the cluster-wide
//! checks, the trace and the election events), and the capture of a node's panic message.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use super::checks::{Checks, Event};
use super::coverage::{Coverage, WorldEvent};
use super::trace::Trace;
use crate::raft::{Entry, Node, NodeId, Ready};
use crate::server::Observer;
use crate::server::events::NodeEvent;

/// The simulator's view of one node, called by its driver.
pub(crate) struct Probe {
    pub(crate) checks: Rc<RefCell<Checks>>,
    pub(crate) trace: Rc<RefCell<Trace>>,
    /// Election events for the nemesis to react to.
    pub(crate) events: Rc<RefCell<Vec<Event>>>,
    /// What the run reached.
    pub(crate) coverage: Rc<RefCell<Coverage>>,
}

pub(crate) fn sim_now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

impl Observer for Probe {
    fn started(&self, node: &Node) {
        let now = sim_now();
        let log = node.log();
        self.trace.borrow_mut().record(
            now,
            format_args!(
                "{} started term={} commit={} last={}",
                node.id(),
                node.term(),
                log.commit(),
                log.last_index()
            ),
        );
        let stored = self.checks.borrow().stored_last(node.id());
        if stored.is_some_and(|stored| log.last_index() < stored) {
            self.coverage.borrow_mut().world(WorldEvent::UnsyncedLost, 1);
        }
        self.checks.borrow_mut().started(node, now);
    }

    fn ready(&self, node: &Node, ready: &Ready) {
        let now = sim_now();
        let events = self.checks.borrow_mut().ready(node, ready, now);
        let mut trace = self.trace.borrow_mut();
        for event in events {
            match &event {
                Event::Role { node, role, term, leader } => {
                    let leader = leader.map_or("none".to_string(), |l| l.to_string());
                    trace.record(now, format_args!("{node} {role} term={term} leader={leader}"));
                }
                Event::Commit { node, commit } => {
                    trace.record(now, format_args!("{node} commit={commit}"))
                }
                Event::Vote { node, term, candidate } => {
                    trace.record(now, format_args!("{node} votes {candidate} term={term}"));
                }
            }
            if !matches!(event, Event::Commit { .. }) {
                self.events.borrow_mut().push(event);
            }
        }
    }

    fn applied(&self, node: NodeId, entry: &Entry) {
        self.checks.borrow_mut().applied(node, entry, sim_now());
    }

    fn lease(&self, node: NodeId, term: crate::raft::Term, until: Option<Duration>) {
        self.checks.borrow_mut().lease(node, term, until);
    }

    fn event(&self, _node: NodeId, event: NodeEvent) {
        self.coverage.borrow_mut().node(event);
    }
}

thread_local! {
    /// The first panic message seen on this thread since the last `take_panic`: a node's panic
    /// reaches the harness wrapped by tokio, which loses the message.
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records a panic message for the harness (installed as part of the panic hook).
pub fn note_panic(info: &std::panic::PanicHookInfo<'_>) {
    let message = info
        .payload()
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    let location =
        info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
    PANIC.with(|p| {
        p.borrow_mut().get_or_insert(format!("{message}{location}"));
    });
}

pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    PANIC.with(|p| p.borrow_mut().take()).unwrap_or_else(|| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into())
    })
}
