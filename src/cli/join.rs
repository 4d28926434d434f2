//! `raftbed node --join`: a node that a running cluster added (etcd's `member add`, then
//! `--initial-cluster-state existing`) learns its id, the cluster's id and its peers from the
//! cluster's member list, finding itself by its peer URL, as etcd's joining member does.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::proto::etcdserverpb::MemberListResponse;
use crate::raft::NodeId;
use crate::server::Member;
use crate::server::members::host_port;
use crate::transport::net::TokioNet;

/// What a joining node learns from the cluster.
#[derive(Debug)]
pub struct Joined {
    /// Its member id.
    pub id: NodeId,
    /// The cluster's id.
    pub cluster: u64,
    /// Every member with its addresses (itself included).
    pub members: BTreeMap<NodeId, Member>,
    /// The voters, for the bootstrap configuration (never itself: it waits for the leader's
    /// log to make it one).
    pub voters: Vec<NodeId>,
}

/// Asks `endpoints` (client addresses) for the member list, for up to `within`: the first
/// member that answers (a learner refuses) is used.
fn member_list(endpoints: &[String], within: Duration) -> Result<MemberListResponse, String> {
    let runtime = super::runtime()?;
    let mut client = Client::new(TokioNet, endpoints.to_vec(), 0);
    client.timeout = Duration::from_secs(1);
    client.attempts = 1;
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < within {
        for (i, endpoint) in endpoints.iter().enumerate() {
            client.prefer(i);
            match runtime.block_on(client.member_list()) {
                Ok(list) => return Ok(list),
                Err(e) => last = format!("{endpoint}: {}", e.message),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("--join: no member answered the member list within {within:?} (last: {last})"))
}

/// Joins the cluster at `endpoints` as the member whose peer URL is `listen`'s port + 1.
///
/// # Errors
/// No member answers, or none has this node's peer URL (it was not added).
pub fn join(endpoints: &[String], listen: SocketAddr) -> Result<Joined, String> {
    let peer = SocketAddr::new(
        listen.ip(),
        listen.port().checked_add(1).ok_or("--listen: no port after it for peers")?,
    );
    let list = member_list(endpoints, Duration::from_secs(30))?;
    let cluster = list.header.as_ref().map_or(0, |h| h.cluster_id);
    let peer_of = |urls: &[String]| urls.first().and_then(|u| host_port(u));
    let me = list.members.iter().find(|m| peer_of(&m.peer_ur_ls) == Some(peer.to_string()));
    let Some(me) = me else {
        return Err(format!(
            "--join: no member has the peer URL http://{peer}; add it first (etcdctl member add NAME --peer-urls=http://{peer}, or raftbed cluster add)"
        ));
    };
    let mut members = BTreeMap::new();
    let mut voters = Vec::new();
    for member in &list.members {
        let Some(peer_addr) = peer_of(&member.peer_ur_ls) else { continue };
        // An unstarted member has no client URL yet: raftbed's clients use the port before
        // the peer port.
        let client_addr = peer_of(&member.client_ur_ls).or_else(|| {
            let addr: SocketAddr = peer_addr.parse().ok()?;
            Some(SocketAddr::new(addr.ip(), addr.port().checked_sub(1)?).to_string())
        });
        let Some(client_addr) = client_addr else { continue };
        members.insert(NodeId(member.id), Member { peer_addr, client_addr });
        if !member.is_learner && member.id != me.id {
            voters.push(NodeId(member.id));
        }
    }
    members.insert(
        NodeId(me.id),
        Member { peer_addr: peer.to_string(), client_addr: listen.to_string() },
    );
    Ok(Joined { id: NodeId(me.id), cluster, members, voters })
}
