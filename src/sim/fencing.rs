//! Locks and fencing under simulation. A few lock clients take turns holding one lock and
//! writing to a *fenced resource*: a separate host standing for storage outside the cluster
//! (a file server, a database) that remembers the highest fencing token it has seen and refuses
//! writes carrying a lower one. Now and then a holder pauses, as a process stopped by a long GC
//! pause would: its keep-alives stop, its lease expires, another client takes the lock; when
//! the first wakes it still believes it holds the lock and writes. Its token is older, and the
//! resource refuses the write. Without the token, that write would have clobbered the new
//! holder's: the refusals counted here are the corruptions fencing prevented.
//!
//! Checked: tokens only increase from one holder to the next (a grant that completed before
//! another was asked for must carry the smaller token).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;

use super::trace::Trace;
use crate::client::Client;
use crate::rng::SplitMix64;
use crate::transport::frame::{read_frame, write_frame};
use crate::transport::net::{Net, SimNet};

/// The resource's host and port.
pub const RESOURCE: &str = "resource:9000";

/// The lock the clients share.
const LOCK: &[u8] = b"fence";

/// One write the resource received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceWrite {
    /// When.
    pub at: Duration,
    /// The lock client.
    pub client: u64,
    /// The token it carried.
    pub token: i64,
    /// Accepted, or refused as stale.
    pub accepted: bool,
}

/// One lock grant, with when it was asked for and answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The lock client.
    pub client: u64,
    /// When `Lock` was called.
    pub invoked: Duration,
    /// When it answered.
    pub completed: Duration,
    /// The fencing token.
    pub token: i64,
}

/// What the lock clients and the resource saw.
#[derive(Debug, Default)]
pub struct FencingLog {
    /// Writes at the resource, in arrival order.
    pub writes: Vec<ResourceWrite>,
    /// Lock grants, in completion order.
    pub grants: Vec<Grant>,
    /// Pauses taken while holding the lock.
    pub pauses: usize,
}

impl FencingLog {
    /// Writes the resource refused because a newer token had been seen.
    pub fn refused(&self) -> usize {
        self.writes.iter().filter(|w| !w.accepted).count()
    }

    /// The smallest gap between a refused token and the highest token the resource had
    /// accepted when it refused it: how close a stale holder came to being let through.
    pub fn closest_refusal(&self) -> Option<i64> {
        let mut highest = i64::MIN;
        let mut closest: Option<i64> = None;
        for write in &self.writes {
            if write.accepted {
                highest = highest.max(write.token);
            } else if highest > i64::MIN {
                let gap = highest - write.token;
                closest = Some(closest.map_or(gap, |c| c.min(gap)));
            }
        }
        closest
    }

    /// The first pair of grants out of token order: `(earlier, later)` where `earlier`
    /// completed before `later` was invoked yet carries a token at least as large.
    pub fn token_order_violation(&self) -> Option<(Grant, Grant)> {
        for later in &self.grants {
            for earlier in &self.grants {
                if earlier.completed < later.invoked && earlier.token >= later.token {
                    return Some((earlier.clone(), later.clone()));
                }
            }
        }
        None
    }
}

/// The fenced resource: accepts a write when its token is at least the highest seen.
pub async fn resource(log: Rc<RefCell<FencingLog>>, trace: Rc<RefCell<Trace>>) -> turmoil::Result {
    let listener = SimNet::WIRE.bind(RESOURCE).await?;
    let highest = Rc::new(std::cell::Cell::new(0i64));
    loop {
        let mut stream = SimNet::accept(&listener).await?;
        let (log, trace, highest) = (log.clone(), trace.clone(), highest.clone());
        tokio::task::spawn_local(async move {
            let mut buf = Vec::new();
            while let Ok(true) = read_frame(&mut stream, &mut buf).await {
                let text = String::from_utf8_lossy(&buf).into_owned();
                let mut fields = text.split(' ').map(|f| f.parse::<i64>().unwrap_or(-1));
                let (client, token) = (fields.next().unwrap_or(-1), fields.next().unwrap_or(-1));
                let accepted = token >= highest.get();
                if accepted {
                    highest.set(token);
                }
                let at = turmoil::sim_elapsed().unwrap_or_default();
                let verdict = if accepted { "accepts" } else { "REFUSES (stale token)" };
                trace
                    .borrow_mut()
                    .record(at, format_args!("resource {verdict} l{client} token={token}"));
                log.borrow_mut().writes.push(ResourceWrite {
                    at,
                    client: client as u64,
                    token,
                    accepted,
                });
                let answer: &[u8] = if accepted { b"ok" } else { b"refused" };
                if write_frame(&mut stream, answer).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// How the lock clients behave.
#[derive(Clone, Debug)]
pub struct LockParams {
    /// Client addresses of the nodes.
    pub nodes: Vec<String>,
    /// Lease TTL in seconds.
    pub ttl: i64,
    /// The chance a holder pauses past its lease.
    pub pause_chance: f64,
}

/// Lock client `id`: takes the lock, writes to the resource, sometimes pauses, releases.
pub async fn lock_client(
    net: SimNet,
    id: u64,
    params: LockParams,
    mut rng: SplitMix64,
    log: Rc<RefCell<FencingLog>>,
    trace: Rc<RefCell<Trace>>,
    stop: Rc<std::cell::Cell<bool>>,
) -> turmoil::Result {
    let now = || turmoil::sim_elapsed().unwrap_or_default();
    let note = |text: String| trace.borrow_mut().record(now(), format_args!("l{id} {text}"));
    let mut client = Client::new(net, params.nodes.clone(), 1_000_000 + id);
    client.prefer(rng.below(params.nodes.len() as u64) as usize);
    let ttl = Duration::from_secs(params.ttl as u64);
    while !stop.get() {
        tokio::time::sleep(rng.duration(Duration::from_millis(50), Duration::from_millis(500)))
            .await;
        client.timeout = Duration::from_secs(1);
        let Ok(lease) = client.lease_grant(params.ttl).await else { continue };
        let invoked = now();
        // Waiting for the lock takes as long as the holder keeps it.
        client.timeout = ttl * 8;
        let held = client.lock(Bytes::from_static(LOCK), lease.id).await;
        client.timeout = Duration::from_secs(1);
        let Ok(held) = held else {
            let _ = client.lease_revoke(lease.id).await;
            continue;
        };
        log.borrow_mut().grants.push(Grant {
            client: id,
            invoked,
            completed: now(),
            token: held.token,
        });
        note(format!("holds the lock, token {}", held.token));
        let pause_at = rng.chance(params.pause_chance).then(|| rng.below(3));
        for round in 0..3 {
            if pause_at == Some(round) {
                let pause = rng.duration(ttl * 2, ttl * 4);
                note(format!("pauses {:.1}s holding token {}", pause.as_secs_f64(), held.token));
                log.borrow_mut().pauses += 1;
                tokio::time::sleep(pause).await;
                note(format!("wakes, still believing it holds token {}", held.token));
            }
            let _ = write_resource(id, held.token).await;
            // Keep the lease while holding.
            tokio::time::sleep(ttl / 4).await;
            if client.keep_alive_once(lease.id).await.unwrap_or(0) <= 0 {
                note("lost its lease".into());
                break;
            }
        }
        let _ = client.unlock(held.key.clone()).await;
        let _ = client.lease_revoke(lease.id).await;
    }
    Ok(())
}

/// One write to the resource; whether it was accepted.
async fn write_resource(client: u64, token: i64) -> std::io::Result<bool> {
    let write = async {
        let mut stream = SimNet::WIRE.connect(RESOURCE).await?;
        write_frame(&mut stream, format!("{client} {token}").as_bytes()).await?;
        let mut answer = Vec::new();
        read_frame(&mut stream, &mut answer).await?;
        Ok(answer == b"ok")
    };
    tokio::time::timeout(Duration::from_secs(1), write).await.unwrap_or_else(|_| {
        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "resource timed out"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(invoked: u64, completed: u64, token: i64) -> Grant {
        let ms = Duration::from_millis;
        Grant { client: 0, invoked: ms(invoked), completed: ms(completed), token }
    }

    #[test]
    fn tokens_must_rise_between_holders_that_did_not_overlap() {
        let mut log =
            FencingLog { grants: vec![grant(0, 10, 5), grant(5, 30, 9)], ..Default::default() };
        assert_eq!(log.token_order_violation(), None);
        log.grants.push(grant(40, 50, 9));
        assert!(log.token_order_violation().is_some());
    }

    #[test]
    fn the_closest_refusal_is_measured_against_the_highest_token_accepted_then() {
        let write =
            |token, accepted| ResourceWrite { at: Duration::ZERO, client: 0, token, accepted };
        let mut log = FencingLog::default();
        assert_eq!(log.closest_refusal(), None);
        log.writes = vec![write(3, true), write(9, true), write(2, false), write(7, false)];
        assert_eq!(log.closest_refusal(), Some(2));
    }
}
