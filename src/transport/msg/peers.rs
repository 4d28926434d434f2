//! Raft's messages as datagrams, one `Envelope` each, for the simulator's message transport.
//! Raft needs nothing of TCP (§3.3: messages may be lost, duplicated or reordered, and the
//! protocol retries), so the network's loss, latency and reordering reach it directly, with no
//! connection to redial after a partition and no acknowledgements.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;
use turmoil::net::UdpSocket;

use crate::raft::{Message, NodeId};

/// Binds this node's peer socket at `addr` (`host:port`), on its UDP port.
pub async fn bind(addr: &str) -> std::io::Result<Arc<UdpSocket>> {
    let port = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("no port in {addr}"))
    })?;
    Ok(Arc::new(UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, port)).await?))
}

/// Delivers every well-formed message that arrives to `inbox`; a full inbox drops it.
pub async fn serve(socket: Arc<UdpSocket>, inbox: mpsc::Sender<Message>) {
    while let Ok((received, _)) = super::next_datagram(&socket).await {
        if let Some(message) = super::datagram::take::<Message>(received) {
            let _ = inbox.try_send(message);
        }
    }
}

/// The sending side.
#[derive(Debug)]
pub struct DatagramPeers {
    socket: Arc<UdpSocket>,
    addrs: BTreeMap<NodeId, SocketAddr>,
}

impl DatagramPeers {
    /// Sends from `socket` to the peers at `addrs` (`host:port`, resolved now).
    pub fn new(socket: Arc<UdpSocket>, addrs: &BTreeMap<NodeId, String>) -> DatagramPeers {
        let mut peers = DatagramPeers { socket, addrs: BTreeMap::new() };
        peers.set_addrs(addrs);
        peers
    }

    /// Sends to `addrs` from now on (peers not listed keep theirs).
    pub fn set_addrs(&mut self, addrs: &BTreeMap<NodeId, String>) {
        for (id, addr) in addrs {
            let Some((host, port)) = addr.rsplit_once(':') else { continue };
            let Ok(port) = port.parse() else { continue };
            self.addrs.insert(*id, SocketAddr::new(turmoil::lookup(host), port));
        }
    }

    /// Sends `message`; the network may lose it.
    pub fn send(&self, message: &Message) {
        let Some(dst) = self.addrs.get(&message.to) else { return };
        let _ = self.socket.send_object_to(Arc::new(message.clone()), *dst);
    }
}
