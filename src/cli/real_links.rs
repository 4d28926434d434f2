//! The links of a scenario replayed on real processes: every host (node, client group,
//! failover monitor) reaches every node through a TCP proxy of its own, one per directed pair
//! of hosts, and the proxy applies what the scenario says of that link — cut, one-way cut,
//! latency, loss. Node programs are not changed: each node is given its peers' proxies as
//! their addresses, so Raft's peer messages and client forwarding, naive-failover's binlog
//! replication and the monitor's pings all cross the same shaped links.
//!
//! Why proxies and not shaping inside each node's transport: one implementation covers every
//! protocol of both systems (framed and gRPC Raft peers, gRPC forwarding, the naive system's
//! own frames), a one-way cut is as easy as a two-way one, and the node processes run exactly
//! the code `raftbed cluster up` runs. The cost is one loopback hop (tens of microseconds)
//! against scenario latencies of milliseconds.
//!
//! TCP semantics of a fault, as in the simulator's TCP: bytes sent over a cut link are lost,
//! and a connection that lost bytes is broken — it stays silent while the link is cut and is
//! closed when it heals (the peers redial); a connection opened across a cut waits, silent,
//! the same way. A connection that saw no traffic during the cut survives it. Loss is per
//! chunk read: a lost chunk breaks its connection at once. Latency delays each chunk by a
//! draw from the link's range, never reordering within a connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::faults::Latency;
use crate::rng::SplitMix64;

/// One directed link.
#[derive(Clone, Copy, Debug)]
struct Link {
    /// Cuts holding it (they compose: it is cut until every one is healed).
    cuts: u32,
    latency: Latency,
    loss: f64,
}

/// What every directed link between hosts is now; the proxies read it per chunk.
#[derive(Debug)]
pub struct LinkTable {
    links: Mutex<BTreeMap<(String, String), Link>>,
    /// As built, for `reset`.
    built: Mutex<BTreeMap<(String, String), Link>>,
    /// Bumped on every change, so broken connections learn of heals.
    changed: watch::Sender<u64>,
}

impl Default for LinkTable {
    fn default() -> LinkTable {
        LinkTable {
            links: Mutex::default(),
            built: Mutex::default(),
            changed: watch::Sender::new(0),
        }
    }
}

impl LinkTable {
    fn edit(&self, f: impl FnOnce(&mut BTreeMap<(String, String), Link>)) {
        f(&mut self.links.lock().expect("link table poisoned"));
        self.changed.send_modify(|n| *n += 1);
    }

    /// Builds the link between `a` and `b` (both ways).
    pub fn build(&self, a: &str, b: &str, latency: Latency, loss: f64) {
        let link = Link { cuts: 0, latency, loss };
        let mut built = self.built.lock().expect("link table poisoned");
        for key in [(a.to_string(), b.to_string()), (b.to_string(), a.to_string())] {
            built.insert(key.clone(), link);
            self.links.lock().expect("link table poisoned").insert(key, link);
        }
    }

    /// Cuts these directed links.
    pub fn cut(&self, pairs: &[(String, String)]) {
        self.edit(|links| {
            for pair in pairs {
                links.entry(pair.clone()).or_insert_with(unshaped).cuts += 1;
            }
        });
    }

    /// Heals these directed links, once each.
    pub fn heal(&self, pairs: &[(String, String)]) {
        self.edit(|links| {
            for pair in pairs {
                if let Some(link) = links.get_mut(pair) {
                    link.cuts = link.cuts.saturating_sub(1);
                }
            }
        });
    }

    /// Sets the loss rate of the link between `a` and `b`, both ways.
    pub fn set_loss(&self, a: &str, b: &str, rate: f64) {
        self.edit(|links| {
            for key in [(a.to_string(), b.to_string()), (b.to_string(), a.to_string())] {
                links.entry(key).or_insert_with(unshaped).loss = rate;
            }
        });
    }

    /// Sets the one-way latency of the link between `a` and `b`, both ways.
    pub fn set_latency(&self, a: &str, b: &str, latency: Latency) {
        self.edit(|links| {
            for key in [(a.to_string(), b.to_string()), (b.to_string(), a.to_string())] {
                links.entry(key).or_insert_with(unshaped).latency = latency;
            }
        });
    }

    /// Every link back as built, no cut left; returns whether any link was cut.
    pub fn reset(&self) -> bool {
        let built = self.built.lock().expect("link table poisoned").clone();
        let mut was_cut = false;
        self.edit(|links| {
            was_cut = links.values().any(|l| l.cuts > 0);
            *links = built;
        });
        was_cut
    }

    /// Whether the directed link is cut, its latency and loss.
    fn now(&self, from: &str, to: &str) -> Link {
        let links = self.links.lock().expect("link table poisoned");
        links.get(&(from.to_string(), to.to_string())).copied().unwrap_or_else(unshaped)
    }

    fn is_cut(&self, from: &str, to: &str) -> bool {
        self.now(from, to).cuts > 0
    }
}

fn unshaped() -> Link {
    Link { cuts: 0, latency: Latency::fixed(Duration::ZERO), loss: 0.0 }
}

/// One proxy: connections accepted on its listener come from host `from` and go to `to` at
/// `upstream`.
#[derive(Clone, Debug)]
pub struct Proxy {
    /// The host connecting.
    pub from: String,
    /// The host connected to.
    pub to: String,
    /// Where `to` listens.
    pub upstream: SocketAddr,
}

/// Two listeners on consecutive loopback ports (a node's client port and its peer port).
///
/// # Errors
/// When no such pair was found in 64 tries.
pub fn bind_pair() -> Result<(std::net::TcpListener, std::net::TcpListener), String> {
    for _ in 0..64 {
        let first = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = first.local_addr().map_err(|e| e.to_string())?.port();
        let Some(next) = port.checked_add(1) else { continue };
        if let Ok(second) = std::net::TcpListener::bind(("127.0.0.1", next)) {
            return Ok((first, second));
        }
    }
    Err("no two consecutive free loopback ports in 64 tries".into())
}

/// Serves `proxy` on `listener` until the runtime stops.
pub async fn serve(listener: std::net::TcpListener, proxy: Proxy, table: Arc<LinkTable>) {
    let _ = listener.set_nonblocking(true);
    let Ok(listener) = TcpListener::from_std(listener) else { return };
    let mut seed = proxy.upstream.port() as u64;
    while let Ok((inbound, _)) = listener.accept().await {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let (proxy, table) = (proxy.clone(), table.clone());
        tokio::spawn(connection(inbound, proxy, table, SplitMix64::new(seed)));
    }
}

/// Why a connection ends early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Carrying on.
    Alive,
    /// Bytes were lost on a cut link: silent until the link heals, then closed.
    BrokenByCut,
    /// A chunk was lost: closed now.
    Lost,
}

async fn connection(inbound: TcpStream, proxy: Proxy, table: Arc<LinkTable>, rng: SplitMix64) {
    let (fate_tx, mut fate) = watch::channel(Fate::Alive);
    // A connection opened across a cut never reaches the other side.
    if table.is_cut(&proxy.from, &proxy.to) {
        let _ = fate_tx.send(Fate::BrokenByCut);
        wait_for_heal(&table, &proxy.from, &proxy.to).await;
        return;
    }
    let connect = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(proxy.upstream));
    let Ok(Ok(outbound)) = connect.await else { return };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    let forward = Direction { from: proxy.from.clone(), to: proxy.to.clone() };
    let back = Direction { from: proxy.to.clone(), to: proxy.from.clone() };
    let mut rng = rng;
    let one = pump(in_read, out_write, forward, table.clone(), fate_tx.clone(), rng.fork());
    let other = pump(out_read, in_write, back, table.clone(), fate_tx.clone(), rng.fork());
    let ended = async {
        loop {
            if fate.changed().await.is_err() {
                return;
            }
            let now = *fate.borrow();
            match now {
                Fate::Alive => {}
                Fate::Lost => return,
                Fate::BrokenByCut => {
                    // Silent until every link of this connection heals.
                    wait_for_heal(&table, &proxy.from, &proxy.to).await;
                    wait_for_heal(&table, &proxy.to, &proxy.from).await;
                    return;
                }
            }
        }
    };
    // Both directions closing cleanly, or a fault, ends the connection; dropping the halves
    // closes both sockets.
    tokio::select! {
        _ = async { tokio::join!(one, other) } => {}
        () = ended => {}
    }
}

async fn wait_for_heal(table: &LinkTable, from: &str, to: &str) {
    let mut changed = table.changed.subscribe();
    while table.is_cut(from, to) {
        if changed.changed().await.is_err() {
            return;
        }
    }
}

#[derive(Clone, Debug)]
struct Direction {
    from: String,
    to: String,
}

/// Copies one direction, chunk by chunk, each delivered after the link's latency.
async fn pump(
    mut read: tokio::net::tcp::OwnedReadHalf,
    mut write: tokio::net::tcp::OwnedWriteHalf,
    dir: Direction,
    table: Arc<LinkTable>,
    fate: watch::Sender<Fate>,
    mut rng: SplitMix64,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(256);
    let reader = async move {
        let mut last = Instant::now();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let link = table.now(&dir.from, &dir.to);
            if link.cuts > 0 {
                fate.send_replace(Fate::BrokenByCut);
                // Everything after a lost byte is lost too: keep reading, deliver nothing.
                continue;
            }
            if *fate.borrow() == Fate::BrokenByCut {
                continue;
            }
            if link.loss > 0.0 && rng.chance(link.loss) {
                fate.send_replace(Fate::Lost);
                return;
            }
            let (lo, hi) = (link.latency.min, link.latency.max);
            let delay = if hi > lo {
                lo + Duration::from_secs_f64(rng.float(0.0, (hi - lo).as_secs_f64()))
            } else {
                lo
            };
            // In order: never before the chunk ahead of it.
            last = last.max(Instant::now() + delay);
            if tx.send((last, buf[..n].to_vec())).await.is_err() {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if write.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = write.shutdown().await;
    };
    // The writer finishes what the reader queued before a clean close.
    let _ = tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn cuts_compose_and_reset_restores_what_was_built() {
        let table = LinkTable::default();
        table.build("a", "b", Latency::fixed(Duration::from_millis(5)), 0.0);
        table.cut(&pairs(&[("a", "b")]));
        table.cut(&pairs(&[("a", "b"), ("b", "a")]));
        assert!(table.is_cut("a", "b") && table.is_cut("b", "a"));
        table.heal(&pairs(&[("a", "b")]));
        assert!(table.is_cut("a", "b"), "still held by the second cut");
        table.heal(&pairs(&[("a", "b"), ("b", "a")]));
        assert!(!table.is_cut("a", "b") && !table.is_cut("b", "a"));
        table.set_latency("a", "b", Latency::fixed(Duration::from_secs(1)));
        table.cut(&pairs(&[("b", "a")]));
        assert!(table.reset(), "a link was cut");
        let link = table.now("b", "a");
        assert_eq!((link.cuts, link.latency.min), (0, Duration::from_millis(5)));
    }

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn through(table: &Arc<LinkTable>) -> SocketAddr {
        let upstream = echo_server().await;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let proxy = Proxy { from: "c".into(), to: "n".into(), upstream };
        tokio::spawn(serve(listener, proxy, table.clone()));
        addr
    }

    async fn echo(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
        stream.write_all(b"ping").await.ok()?;
        let mut buf = [0u8; 4];
        tokio::time::timeout(within, stream.read_exact(&mut buf)).await.ok()?.ok()?;
        Some(buf.to_vec())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_proxy_delays_loses_across_a_cut_and_closes_on_heal() {
        let table = Arc::new(LinkTable::default());
        table.build("c", "n", Latency::fixed(Duration::from_millis(100)), 0.0);
        let addr = through(&table).await;
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let started = Instant::now();
        assert_eq!(echo(&mut stream, Duration::from_secs(5)).await.as_deref(), Some(&b"ping"[..]));
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200), "two ways of 100 ms, took {took:?}");

        table.cut(&pairs(&[("c", "n")]));
        assert_eq!(echo(&mut stream, Duration::from_millis(400)).await, None, "lost in the cut");
        table.heal(&pairs(&[("c", "n")]));
        let mut buf = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "closed at the heal: {closed:?}");

        let mut fresh = TcpStream::connect(addr).await.expect("connect");
        assert!(echo(&mut fresh, Duration::from_secs(5)).await.is_some(), "a new connection works");
    }
}
