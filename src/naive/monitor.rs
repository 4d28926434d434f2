//! The failover monitor (orchestrator's role): pings every node each interval; when the
//! primary has not answered for `failover_after`, promotes the reachable replica with the
//! highest binlog position at a new epoch and points the other reachable nodes at it. Any node
//! it reaches later that disagrees (an old primary back from a partition, a replica following
//! the wrong primary) is told to follow the current primary. No quorum is asked for: what the
//! monitor cannot reach, it cannot stop.
//!
//! Each node has at most one ping in flight. A ping not answered within its round stays in
//! flight into the next rounds (a slow answer still shows the node alive) until it is answered,
//! fails, or has waited `failover_after`; only then is the node pinged again. So a monitor
//! pinging faster than its network answers never piles pings up.

use std::rc::Rc;
use std::time::Duration;

use prost::Message as _;

use super::{Msg, msg};
use crate::raft::NodeId;
use crate::transport::frame::{read_frame, write_frame};
use crate::transport::net::Net;

/// The monitor's settings.
#[derive(Clone, Debug)]
pub struct MonitorParams {
    /// Every node's control address.
    pub nodes: Vec<(NodeId, String)>,
    /// The first primary.
    pub primary: NodeId,
    /// Time between ping rounds.
    pub interval: Duration,
    /// Promote after the primary has not answered for this long.
    pub failover_after: Duration,
}

/// What the monitor reports.
pub trait MonitorObserver {
    /// A line for the trace.
    fn note(&self, text: String);
}

/// Sends one message and waits for the answer.
async fn ask<N: Net>(net: &N, addr: &str, message: &Msg, timeout: Duration) -> Option<Msg> {
    let exchange = async {
        let mut stream = net.connect(addr).await.ok()?;
        write_frame(&mut stream, &message.encode_to_vec()).await.ok()?;
        let mut buf = Vec::new();
        read_frame(&mut stream, &mut buf).await.ok()?.then_some(())?;
        Msg::decode(buf.as_slice()).ok()
    };
    tokio::time::timeout(timeout, exchange).await.ok().flatten()
}

/// Each node's ping in flight, if any.
struct Pings<N: Net> {
    net: N,
    /// The answer to come of each node's ping in flight.
    in_flight: Vec<Option<tokio::sync::oneshot::Receiver<Option<Msg>>>>,
    /// A ping unanswered for this long is given up.
    give_up: Duration,
}

impl<N: Net + Clone + 'static> Pings<N> {
    /// Pings node `i` at `addr` unless a ping to it is in flight, and waits up to `wait` for
    /// that ping's answer.
    async fn ping(&mut self, i: usize, addr: &str, wait: Duration) -> Option<Msg> {
        if self.in_flight[i].is_none() {
            let (tell, answer) = tokio::sync::oneshot::channel();
            let (net, addr, give_up) = (self.net.clone(), addr.to_string(), self.give_up);
            tokio::task::spawn_local(async move {
                let _ = tell.send(ask(&net, &addr, &Msg::ping(), give_up).await);
            });
            self.in_flight[i] = Some(answer);
        }
        let pending = self.in_flight[i].as_mut().expect("set above");
        match tokio::time::timeout(wait, pending).await {
            Err(_) => None,
            Ok(answer) => {
                self.in_flight[i] = None;
                answer.ok().flatten()
            }
        }
    }
}

/// Runs the monitor until its host stops.
pub async fn run<N: Net + Clone + 'static>(
    net: N,
    params: MonitorParams,
    observer: Rc<dyn MonitorObserver>,
) -> turmoil::Result {
    let mut primary = params.primary;
    let mut epoch = 1u64;
    let mut last_seen = tokio::time::Instant::now();
    let timeout = params.interval.mul_f64(0.8);
    let give_up = params.failover_after.max(params.interval);
    let mut pings = Pings {
        net: net.clone(),
        in_flight: (0..params.nodes.len()).map(|_| None).collect(),
        give_up,
    };
    loop {
        tokio::time::sleep(params.interval).await;
        let mut answers = Vec::new();
        for (i, (id, addr)) in params.nodes.iter().enumerate() {
            if let Some(Msg { body: Some(msg::Body::Pong(pong)) }) =
                pings.ping(i, addr, timeout).await
            {
                answers.push((*id, addr.clone(), pong));
            }
        }
        let now = tokio::time::Instant::now();
        if answers.iter().any(|(id, _, p)| *id == primary && p.primary && p.epoch == epoch) {
            last_seen = now;
        }
        if now - last_seen >= params.failover_after {
            let candidate = answers
                .iter()
                .filter(|(id, _, _)| *id != primary)
                .max_by_key(|(id, _, p)| (p.position, std::cmp::Reverse(id.0)));
            if let Some((id, addr, _)) = candidate {
                let next = epoch + 1;
                if ask(&net, addr, &Msg::promote(next), timeout).await.is_some() {
                    observer.note(format!(
                        "monitor: {primary} silent for {:.1}s, promotes {id} (epoch {next})",
                        (now - last_seen).as_secs_f64()
                    ));
                    primary = *id;
                    epoch = next;
                    last_seen = now;
                }
            }
        }
        for (id, addr, pong) in &answers {
            let agrees = if *id == primary {
                pong.primary && pong.epoch == epoch
            } else {
                !pong.primary && pong.following == primary.0
            };
            if !agrees {
                if *id == primary {
                    ask(&net, addr, &Msg::promote(epoch), timeout).await;
                } else {
                    observer.note(format!("monitor: tells {id} to follow {primary}"));
                    ask(&net, addr, &Msg::follow(primary.0, epoch), timeout).await;
                }
            }
        }
    }
}
