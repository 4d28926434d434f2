//! Peer messages over TCP: prost `Envelope`s in length-prefixed frames, one long-lived
//! connection per direction and peer.
//!
//! Outbound, each peer has a bounded queue and a sender task. A full queue drops the message
//! (Raft tolerates loss and retries). The receiver acknowledges what it has read (one cumulative
//! count per burst of frames); a sender whose frames go unacknowledged for `rpc_timeout`, or
//! whose write or connect takes longer, drops the connection and dials again. That deadline is
//! what heals a connection after a partition: a TCP segment lost in one (turmoil never
//! retransmits) would otherwise stall the stream forever.
//!
//! Inbound, every accepted connection gets a reader task that decodes frames (refusing
//! impossible messages, see `convert.rs`) into the node's bounded inbox, dropping when it is
//! full, and closes connections idle for longer than `idle_timeout`.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use prost::Message as _;
use tokio::io::BufReader;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

use super::frame::{read_frame, write_frame};
use super::net::Net;
use super::pb;
use super::queues::{Dial, PeerQueues};
use crate::raft::{Message, NodeId};

/// Timing and bounds of the peer transport.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Deadline for a connect, a write, and an acknowledgement.
    pub rpc_timeout: Duration,
    /// An inbound connection with no frame for this long is closed.
    pub idle_timeout: Duration,
    /// Messages queued per peer before new ones are dropped.
    pub queue_depth: usize,
}

impl Default for TransportConfig {
    fn default() -> TransportConfig {
        TransportConfig {
            rpc_timeout: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(10),
            queue_depth: 4096,
        }
    }
}

/// The sending side: one queue per peer.
#[derive(Debug)]
pub struct Peers {
    queues: PeerQueues<Vec<u8>>,
    dropped: Rc<Cell<u64>>,
}

impl Peers {
    /// Starts a sender task for every peer in `addrs` (not this node).
    pub fn start<N: Net>(
        net: &N,
        addrs: &BTreeMap<NodeId, String>,
        config: &TransportConfig,
    ) -> Peers {
        let (net, config) = (net.clone(), config.clone());
        let dial: Dial<Vec<u8>> = Rc::new(move |addr: &str| {
            let (tx, rx) = mpsc::channel(config.queue_depth);
            tokio::task::spawn_local(send_loop(net.clone(), addr.to_string(), rx, config.clone()));
            tx
        });
        Peers { queues: PeerQueues::new(dial, addrs), dropped: Rc::new(Cell::new(0)) }
    }

    /// Sends to `addrs` from now on (peers not listed keep their senders).
    pub fn set_addrs(&mut self, addrs: &BTreeMap<NodeId, String>) {
        self.queues.set_addrs(addrs);
    }

    /// Queues `message` for its receiver; drops it if the queue is full.
    pub fn send(&self, message: &Message) {
        let Some(queue) = self.queues.get(message.to) else { return };
        let bytes = pb::Envelope::from(message).encode_to_vec();
        if queue.try_send(bytes).is_err() {
            self.dropped.set(self.dropped.get() + 1);
        }
    }

    /// Messages dropped because a queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }
}

/// Acknowledgement progress of one outbound connection.
struct AckState {
    acked: Cell<u64>,
    /// When the oldest unacknowledged frame started waiting (or the last ack arrived).
    waiting_since: Cell<Instant>,
}

async fn send_loop<N: Net>(
    net: N,
    addr: String,
    mut queue: mpsc::Receiver<Vec<u8>>,
    config: TransportConfig,
) {
    loop {
        let stream = match timeout(config.rpc_timeout, net.connect(&addr)).await {
            Ok(Ok(stream)) => stream,
            _ => {
                // Unreachable: what was queued is stale by the time we get through.
                tokio::time::sleep(config.rpc_timeout / 2).await;
                while queue.try_recv().is_ok() {}
                continue;
            }
        };
        let (reader, mut writer) = tokio::io::split(stream);
        let acks =
            Rc::new(AckState { acked: Cell::new(0), waiting_since: Cell::new(Instant::now()) });
        let ack_reader = tokio::task::spawn_local(read_acks(reader, acks.clone()));
        let mut sent = 0u64;
        loop {
            let next = tokio::select! {
                biased;
                next = queue.recv() => match next {
                    Some(bytes) => Some(bytes),
                    None => {
                        ack_reader.abort();
                        return;
                    }
                },
                () = tokio::time::sleep(config.rpc_timeout / 2) => None,
            };
            if let Some(bytes) = next {
                if acks.acked.get() == sent {
                    acks.waiting_since.set(Instant::now());
                }
                match timeout(config.rpc_timeout, write_frame(&mut writer, &bytes)).await {
                    Ok(Ok(())) => sent += 1,
                    _ => break,
                }
            }
            let stuck =
                acks.acked.get() < sent && acks.waiting_since.get().elapsed() > config.rpc_timeout;
            if stuck || ack_reader.is_finished() {
                break;
            }
        }
        ack_reader.abort();
    }
}

async fn read_acks<R: tokio::io::AsyncRead + Unpin>(mut reader: R, acks: Rc<AckState>) {
    let mut buf = Vec::new();
    while let Ok(true) = read_frame(&mut reader, &mut buf).await {
        let Ok(count) = <[u8; 8]>::try_from(buf.as_slice()) else { return };
        acks.acked.set(u64::from_le_bytes(count));
        acks.waiting_since.set(Instant::now());
    }
}

/// Accepts peer connections forever, feeding decoded messages to `inbox`.
pub async fn serve<N: Net>(
    listener: N::Listener,
    inbox: mpsc::Sender<Message>,
    config: TransportConfig,
) {
    loop {
        match N::accept(&listener).await {
            Ok(stream) => {
                tokio::task::spawn_local(read_peer::<N>(stream, inbox.clone(), config.clone()));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn read_peer<N: Net>(
    stream: N::Stream,
    inbox: mpsc::Sender<Message>,
    config: TransportConfig,
) {
    let (reader, mut writer) = tokio::io::split(stream);
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    let mut count = 0u64;
    loop {
        match timeout(config.idle_timeout, read_frame(&mut reader, &mut buf)).await {
            Ok(Ok(true)) => {}
            _ => return,
        }
        let Ok(envelope) = pb::Envelope::decode(buf.as_slice()) else { return };
        let Ok(message) = Message::try_from(envelope) else { return };
        // A full inbox drops the message; the sender's Raft retries.
        let _ = inbox.try_send(message);
        count += 1;
        // Acknowledge once per burst: when nothing more is buffered.
        if reader.buffer().is_empty() {
            let ack = count.to_le_bytes();
            if !matches!(
                timeout(config.rpc_timeout, write_frame(&mut writer, &ack)).await,
                Ok(Ok(()))
            ) {
                return;
            }
        }
    }
}
