//! Membership changes asked of the simulated cluster, as an operator's script asks them: each
//! sent to whichever node leads as soon as it is asked (a replacement's removal and addition
//! go out back to back, without waiting for each other), and asked again while the leader
//! cannot take it yet. The answers come back through the nodes' drivers
//! (`Call::ChangeMembership`) on a later step, so the queue is polled before every step and
//! the world never waits.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::raft::{Error as RaftError, MembershipChange};

/// How long to wait before asking again after a refusal that may pass.
const RETRY_AFTER: Duration = Duration::from_millis(50);
/// How long a change is asked for before it is given up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(10);

/// What became of a change.
pub(super) enum Outcome {
    /// Appended by `node` at `index`.
    Appended { change: MembershipChange, node: usize, index: u64 },
    /// Refused for good (the change cannot be made from the configuration).
    Refused { change: MembershipChange, node: usize, why: String },
    /// Asked for too long; the last refusal.
    GaveUp { change: MembershipChange, last: String },
}

/// A change not yet appended.
struct Wanted {
    change: MembershipChange,
    asked: Duration,
    /// Not asked again before this.
    retry_at: Duration,
    /// The node asked, and where its answer comes.
    waiting: Option<(usize, oneshot::Receiver<Result<u64, RaftError>>)>,
    /// Why it was last refused.
    last_refusal: String,
}

/// The changes asked and not yet appended, in the order asked.
#[derive(Default)]
pub(super) struct Changes {
    queue: VecDeque<Wanted>,
}

impl Changes {
    /// Queues `change`, asked at `now`.
    pub(super) fn push(&mut self, change: MembershipChange, now: Duration) {
        let last_refusal = String::new();
        self.queue.push_back(Wanted {
            change,
            asked: now,
            retry_at: now,
            waiting: None,
            last_refusal,
        });
    }

    /// Whether nothing is queued.
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Collects the answers that came, and gives up on changes asked for too long: what
    /// became of them, in the order asked.
    pub(super) fn poll(&mut self, now: Duration) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        self.queue.retain_mut(|wanted| match Self::answer(wanted, now) {
            Some(outcome) => {
                outcomes.push(outcome);
                false
            }
            None => true,
        });
        outcomes
    }

    fn answer(wanted: &mut Wanted, now: Duration) -> Option<Outcome> {
        if let Some((node, receiver)) = &mut wanted.waiting {
            let node = *node;
            let answer = match receiver.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => return None,
                Err(oneshot::error::TryRecvError::Closed) => None,
                Ok(answer) => Some(answer),
            };
            wanted.waiting = None;
            wanted.retry_at = now + RETRY_AFTER;
            let change = wanted.change.clone();
            match answer {
                Some(Ok(index)) => return Some(Outcome::Appended { change, node, index }),
                Some(Err(RaftError::InvalidChange(why))) => {
                    return Some(Outcome::Refused { change, node, why });
                }
                Some(Err(other)) => wanted.last_refusal = other.to_string(),
                None => wanted.last_refusal = "the node asked went down".into(),
            }
        }
        (now.saturating_sub(wanted.asked) >= GIVE_UP_AFTER).then(|| Outcome::GaveUp {
            change: wanted.change.clone(),
            last: std::mem::take(&mut wanted.last_refusal),
        })
    }

    /// The changes to ask now, by their place in the queue: the caller sends each and gives
    /// back its receiver with [`Changes::asked`], or says why not with [`Changes::not_sent`].
    pub(super) fn due(&self, now: Duration) -> Vec<(usize, MembershipChange)> {
        let due = |w: &&Wanted| w.waiting.is_none() && w.retry_at <= now;
        self.queue
            .iter()
            .enumerate()
            .filter(|(_, w)| due(w))
            .map(|(i, w)| (i, w.change.clone()))
            .collect()
    }

    /// Change `i` was sent to `node`.
    pub(super) fn asked(
        &mut self,
        i: usize,
        node: usize,
        receiver: oneshot::Receiver<Result<u64, RaftError>>,
    ) {
        self.queue[i].waiting = Some((node, receiver));
    }

    /// Change `i` could not be sent now (no leader, or it is down): asked again later.
    pub(super) fn not_sent(&mut self, i: usize, now: Duration, why: &str) {
        self.queue[i].retry_at = now + RETRY_AFTER;
        self.queue[i].last_refusal = why.to_string();
    }
}

impl super::World<'_> {
    /// Collects answers to membership changes and sends the leader those due, noting what
    /// became of each.
    pub(super) fn drive_changes(&mut self) {
        use crate::faults::Faults;
        let now = Faults::now(self);
        for outcome in self.changes.poll(now) {
            let text = match outcome {
                Outcome::Appended { change, node, index } => {
                    format!("{} appended {change} at index {index}", self.nodes[node])
                }
                Outcome::Refused { change, node, why } => {
                    format!("{} refused {change}: {why}", self.nodes[node])
                }
                Outcome::GaveUp { change, last } => {
                    format!("gave up on {change} after {GIVE_UP_AFTER:?} (last: {last})")
                }
            };
            // What the cluster answered is not a fault: a replay of this run asks again and
            // hears the same answers, so the line goes to the trace and the report only.
            self.tell(&text);
        }
        let due = self.changes.due(now);
        if due.is_empty() {
            return;
        }
        let leader = self.leader();
        for (i, change) in due {
            let Some(leader) = leader else {
                self.changes.not_sent(i, now, "no leader");
                continue;
            };
            let (reply, receiver) = oneshot::channel();
            let call = crate::server::calls::Call::ChangeMembership { change, attrs: None, reply };
            if self.lives[leader].call(call) {
                self.changes.asked(i, leader, receiver);
            } else {
                self.changes.not_sent(i, now, "the leader is down");
            }
        }
    }
}
