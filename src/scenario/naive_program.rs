//! The comparison systems as a node program of the simulated world: naive-failover's
//! primary and replicas on every node host, and its failover monitor as a control host. The
//! probe turns what they report into roles, fencing counts and trace lines.

use std::cell::RefCell;
use std::rc::Rc;

use super::roles::Roles;
use crate::naive::{self, Disk, NaiveConfig, NaiveObserver, NaiveRole, monitor};
use crate::raft::NodeId;
use crate::sim::checks::Checks;
use crate::sim::trace::Trace;
use crate::sim::{NodeHost, NodeProgram, WorldSpec};

/// The naive failover monitor's host.
pub const MONITOR_HOST: &str = "monitor";

/// naive-failover (or, `fenced`, naive-failover-fenced) on the world's nodes.
pub(crate) struct NaiveProgram {
    /// Epochs checked at the storage, and semi-synchronous acknowledgement.
    pub(crate) fenced: bool,
    /// The first primary.
    pub(crate) primary: usize,
    /// The monitor's ping interval and failover threshold.
    pub(crate) monitor: (std::time::Duration, std::time::Duration),
    pub(crate) roles: Rc<RefCell<Roles>>,
    /// Each node's disk (binlog), which survives its crashes.
    pub(crate) disks: RefCell<Vec<Rc<RefCell<Disk>>>>,
}

impl NodeProgram for NaiveProgram {
    fn add_node(&self, sim: &mut turmoil::Sim<'_>, node: NodeHost<'_>) {
        let id = NodeId(node.index as u64 + 1);
        let disk = Rc::new(RefCell::new(Disk::new(id, NodeId(self.primary as u64 + 1))));
        self.disks.borrow_mut().push(disk.clone());
        let naive = NaiveConfig { node: node.config, fenced: self.fenced };
        let probe: Rc<dyn NaiveObserver> =
            Rc::new(NaiveProbe { roles: self.roles.clone(), trace: node.trace.clone() });
        let (host, net) = (node.name.to_string(), node.net);
        sim.host(node.name, move || {
            let (naive, disk, probe, host) =
                (naive.clone(), disk.clone(), probe.clone(), host.clone());
            async move {
                naive::run_naive_node(naive, net, disk, probe)
                    .await
                    .map_err(|e| format!("{host}: {e}").into())
            }
        });
    }

    fn add_control_hosts(
        &self,
        sim: &mut turmoil::Sim<'_>,
        spec: &WorldSpec,
        trace: &Rc<RefCell<Trace>>,
    ) -> Vec<String> {
        let members = spec.node.config(0, &spec.nodes, spec.voters, spec.seed).members;
        let (interval, failover_after) = self.monitor;
        let params = monitor::MonitorParams {
            nodes: members.iter().map(|(id, m)| (*id, m.peer_addr.clone())).collect(),
            primary: NodeId(self.primary as u64 + 1),
            interval,
            failover_after,
        };
        let observer: Rc<dyn monitor::MonitorObserver> =
            Rc::new(NaiveProbe { roles: self.roles.clone(), trace: trace.clone() });
        sim.client(MONITOR_HOST, monitor::run(spec.sim_net, params, observer));
        vec![MONITOR_HOST.into()]
    }

    fn leader(&self, _checks: &Checks) -> Option<usize> {
        self.roles.borrow().naive_primary()
    }
}

struct NaiveProbe {
    roles: Rc<RefCell<Roles>>,
    trace: Rc<RefCell<Trace>>,
}

fn now() -> std::time::Duration {
    crate::sim::sim_now()
}

impl NaiveObserver for NaiveProbe {
    fn role(&self, node: NodeId, role: NaiveRole, epoch: u64) {
        let now = now();
        let index = node.0 as usize - 1;
        let name = if role == NaiveRole::Primary { "primary" } else { "replica" };
        let mut roles = self.roles.borrow_mut();
        // Epoch 1's primary is configured, not elected: promotions start at epoch 2.
        if role == NaiveRole::Primary
            && epoch > 1
            && roles.naive.get(&index) != Some(&(role, epoch))
        {
            roles.promotions += 1;
        }
        roles.naive.insert(index, (role, epoch));
        roles.set(index, name, now);
        let following = match role {
            NaiveRole::Primary => String::new(),
            NaiveRole::Replica(p) => {
                format!(" of {}", p.map_or("nobody".into(), |p| p.to_string()))
            }
        };
        self.trace.borrow_mut().record(now, format_args!("{node} {name}{following} epoch={epoch}"));
    }

    fn refused(&self, node: NodeId, from: NodeId, epoch: u64) {
        self.roles.borrow_mut().refused += 1;
        self.trace
            .borrow_mut()
            .record(now(), format_args!("{node} refuses {from}'s epoch {epoch}"));
    }

    fn unstored(&self, node: NodeId, epoch: u64) {
        // Fencing at work only when a newer epoch exists: the replicas moved on.
        let mut roles = self.roles.borrow_mut();
        let newest = roles.naive.values().map(|(_, e)| *e).max().unwrap_or(0);
        if newest > epoch {
            roles.refused += 1;
            self.trace.borrow_mut().record(
                now(),
                format_args!(
                    "{node} write at stale epoch {epoch} stored by no replica (epoch {newest} exists)"
                ),
            );
        }
    }

    fn note(&self, node: NodeId, text: String) {
        self.trace.borrow_mut().record(now(), format_args!("{node} {text}"));
    }
}

impl monitor::MonitorObserver for NaiveProbe {
    fn note(&self, text: String) {
        self.trace.borrow_mut().record(now(), format_args!("{text}"));
    }
}
