//! The members a node knows and how to reach them: etcd's member records, kept with the
//! configuration they belong to.
//!
//! A configuration entry names its members and carries what the server keeps of each
//! (`Membership::attrs`: a JSON `MemberInfo`), so the entry that adds a member also says where
//! it listens, and takes effect with it (§4.1); a node that restarts or joins learns its peers'
//! addresses from its log. The bootstrap members, which no entry names, are described by the
//! node's flags (`--peers`). The driver refreshes the `Directory` whenever its configuration
//! changes; the API and the forwarder read it.

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use super::Member;
use crate::raft::{Membership, NodeId};

/// What etcd keeps of a member beside its id: its name and URLs. A member added by
/// MemberAdd has peer URLs only until it starts and publishes its name and client URLs
/// (etcd lists it as "unstarted" until then).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The member's name (empty: not started yet).
    #[serde(default)]
    pub name: String,
    /// Where its peers reach it.
    #[serde(default, rename = "peerURLs")]
    pub peer_urls: Vec<String>,
    /// Where clients reach it (empty: not started yet).
    #[serde(default, rename = "clientURLs")]
    pub client_urls: Vec<String>,
}

impl MemberInfo {
    /// A bootstrap member, named after its id.
    pub fn of_member(id: NodeId, member: &Member) -> MemberInfo {
        MemberInfo {
            name: id.to_string(),
            peer_urls: vec![format!("http://{}", member.peer_addr)],
            client_urls: vec![format!("http://{}", member.client_addr)],
        }
    }

    /// The attribute string stored with the configuration.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("plain strings serialise")
    }

    /// `encode`'s string, or `None` if it is not one.
    pub fn decode(text: &str) -> Option<MemberInfo> {
        serde_json::from_str(text).ok()
    }

    /// Whether the member has published its name (etcd's `IsStarted`).
    pub fn started(&self) -> bool {
        !self.name.is_empty()
    }

    /// `host:port` of its first peer URL.
    pub fn peer_addr(&self) -> Option<String> {
        self.peer_urls.first().and_then(|url| host_port(url))
    }

    /// `host:port` of its first client URL.
    pub fn client_addr(&self) -> Option<String> {
        self.client_urls.first().and_then(|url| host_port(url))
    }
}

/// `host:port` of `http://host:port[/]` (an IP address, or a simulated host's name), or
/// `None` for anything else.
pub fn host_port(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?.trim_end_matches('/');
    if let Ok(addr) = rest.parse::<std::net::SocketAddr>() {
        return Some(addr.to_string());
    }
    let (host, port) = rest.rsplit_once(':')?;
    let name = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    let valid = !host.is_empty() && host.chars().all(name) && port.parse::<u16>().is_ok();
    valid.then(|| rest.to_string())
}

/// The members of a node's latest configuration, with what it knows of each.
#[derive(Debug)]
pub struct Directory {
    /// This node.
    pub me: NodeId,
    /// The members its flags describe (for a bootstrap configuration, which carries none).
    bootstrap: BTreeMap<NodeId, MemberInfo>,
    current: RwLock<Current>,
}

#[derive(Clone, Debug, Default)]
struct Current {
    membership: Membership,
    infos: BTreeMap<NodeId, MemberInfo>,
    /// Client addresses of the members and the bootstrap nodes, parsed once (a follower
    /// looks one up for every request it forwards).
    clients: BTreeMap<NodeId, String>,
}

impl Current {
    fn new(
        membership: Membership,
        infos: BTreeMap<NodeId, MemberInfo>,
        bootstrap: &BTreeMap<NodeId, MemberInfo>,
    ) -> Current {
        let clients = bootstrap
            .iter()
            .chain(&infos)
            .filter_map(|(id, info)| Some((*id, info.client_addr()?)))
            .collect();
        Current { membership, infos, clients }
    }
}

impl Directory {
    /// The directory of node `me`, whose flags describe `members`, before its log is read.
    pub fn new(me: NodeId, members: &BTreeMap<NodeId, Member>) -> Directory {
        let bootstrap: BTreeMap<NodeId, MemberInfo> =
            members.iter().map(|(id, m)| (*id, MemberInfo::of_member(*id, m))).collect();
        let membership = Membership::of_voters(members.keys().copied());
        let current = Current::new(membership, bootstrap.clone(), &bootstrap);
        Directory { me, bootstrap, current: RwLock::new(current) }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Follows `membership` (the node's latest configuration). Returns whether anything
    /// changed.
    pub fn follow(&self, membership: &Membership) -> bool {
        if self.read().membership == *membership {
            return false;
        }
        let infos = membership
            .members()
            .into_iter()
            .map(|id| {
                let stored = membership.attrs.get(&id).and_then(|a| MemberInfo::decode(a));
                let info = stored.or_else(|| self.bootstrap.get(&id).cloned()).unwrap_or_default();
                (id, info)
            })
            .collect();
        let mut current = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = Current::new(membership.clone(), infos, &self.bootstrap);
        true
    }

    /// The latest configuration.
    pub fn membership(&self) -> Membership {
        self.read().membership.clone()
    }

    /// Every member with what is known of it, in id order.
    pub fn members(&self) -> BTreeMap<NodeId, MemberInfo> {
        self.read().infos.clone()
    }

    /// What the latest configuration entry says of `id` (not the flags).
    pub fn stored_info(&self, id: NodeId) -> Option<MemberInfo> {
        self.read().membership.attrs.get(&id).and_then(|a| MemberInfo::decode(a))
    }

    /// What is known of `id`, if it is a member.
    pub fn info(&self, id: NodeId) -> Option<MemberInfo> {
        self.read().infos.get(&id).cloned()
    }

    /// The members' attributes as a configuration carries them: every member's, so that each
    /// configuration entry describes all of its members.
    pub fn attrs(&self) -> BTreeMap<NodeId, String> {
        self.read().infos.iter().map(|(id, info)| (*id, info.encode())).collect()
    }

    /// Where to reach `id`'s client API (a member's, or a bootstrap node's).
    pub fn client_addr(&self, id: NodeId) -> Option<String> {
        self.read().clients.get(&id).cloned()
    }

    /// `with(address)` of `id`'s client API, without copying it.
    pub fn with_client_addr<T>(&self, id: NodeId, with: impl FnOnce(Option<&str>) -> T) -> T {
        with(self.read().clients.get(&id).map(String::as_str))
    }

    /// Peer addresses of every other node known: the members, and the bootstrap nodes that
    /// are members no longer (a removed server may still ask for votes, §4.2.3, and hears
    /// the answer).
    pub fn peer_addrs(&self) -> BTreeMap<NodeId, String> {
        let current = self.read();
        let known = self.bootstrap.iter().chain(&current.infos).filter(|(id, _)| **id != self.me);
        known.filter_map(|(id, info)| Some((*id, info.peer_addr()?))).collect()
    }

    /// Whether this node is a learner in its latest configuration.
    pub fn is_learner(&self) -> bool {
        self.read().membership.learners.contains(&self.me)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::MembershipChange;

    fn member(port: u16) -> Member {
        Member {
            peer_addr: format!("127.0.0.1:{}", port + 1),
            client_addr: format!("127.0.0.1:{port}"),
        }
    }

    #[test]
    fn a_configuration_entry_describes_the_members_it_adds() {
        let members: BTreeMap<NodeId, Member> =
            (1..=3).map(|n| (NodeId(n), member(24000 + 10 * n as u16))).collect();
        let directory = Directory::new(NodeId(1), &members);
        assert_eq!(directory.client_addr(NodeId(2)).as_deref(), Some("127.0.0.1:24020"));
        let added =
            MemberInfo { peer_urls: vec!["http://127.0.0.1:24041".into()], ..Default::default() };
        let mut attrs = directory.attrs();
        attrs.insert(NodeId(9), added.encode());
        let mut next =
            directory.membership().apply(&MembershipChange::AddLearner(NodeId(9))).unwrap();
        next.attrs = attrs;
        assert!(directory.follow(&next));
        assert!(!directory.follow(&next), "nothing changed");
        assert_eq!(
            directory.peer_addrs().get(&NodeId(9)).map(String::as_str),
            Some("127.0.0.1:24041")
        );
        assert!(!directory.info(NodeId(9)).unwrap().started());
        assert!(directory.info(NodeId(3)).unwrap().started());
        // A node that never had the flags (it joined) learns the others from the entry.
        let joined = Directory::new(NodeId(9), &BTreeMap::new());
        joined.follow(&next);
        assert_eq!(joined.client_addr(NodeId(3)).as_deref(), Some("127.0.0.1:24030"));
        assert!(joined.is_learner());
        assert_eq!(host_port("http://127.0.0.1:1/"), Some("127.0.0.1:1".into()));
        assert_eq!(host_port("https://x:1"), None);
        assert_eq!(host_port("http://n3:2379"), Some("n3:2379".into()));
        assert_eq!(host_port("http://n3:x"), None);
        assert_eq!(host_port("http://a b:1"), None);
    }
}
