//! etcd's Cluster service: the member list any voter answers from its latest configuration,
//! and the changes only the leader makes (a follower forwards them), with etcd 3.4's rules
//! and errors. Each change is one configuration entry: etcd's member API makes single-member
//! changes only (§4.2); `raftbed cluster replace` asks for a joint one (§4.3) through the
//! admin port.
//!
//! As etcd's, a change is answered once its configuration entry is applied, and the answer
//! lists the members after it.

use std::collections::BTreeMap;
use std::time::Duration;

use tonic::{Request, Response, Status};

use super::{Api, FORWARDED_HEADER, status};
use crate::kv::ApiError;
use crate::proto::etcdserverpb::cluster_client::ClusterClient;
use crate::proto::etcdserverpb::cluster_server::Cluster;
use crate::proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse, ResponseHeader,
};
use crate::raft::{Error as RaftError, MembershipChange, NodeId};
use crate::server::calls::Call;
use crate::server::members::{MemberInfo, host_port};
use crate::transport::net::Net;

/// etcd's share of the leader's log a learner must hold before it may be promoted.
const LEARNER_READY: f64 = 0.9;

fn failed(message: &str) -> Status {
    status(&ApiError::new(tonic::Code::FailedPrecondition, message))
}

fn not_found() -> Status {
    status(&ApiError::new(tonic::Code::NotFound, "etcdserver: member not found"))
}

fn not_enough_started() -> Status {
    failed("etcdserver: re-configuration failed due to not enough started members")
}

/// etcd's `Member`, from what the directory knows.
fn member(id: NodeId, info: &MemberInfo, learner: bool) -> Member {
    Member {
        id: id.0,
        name: info.name.clone(),
        peer_ur_ls: info.peer_urls.clone(),
        client_ur_ls: info.client_urls.clone(),
        is_learner: learner,
    }
}

/// A new member's id: 64 bits, as etcd's, from the cluster, its peer URLs and where the
/// leader's log stands (so that re-adding a URL gives a new id).
fn mint_id(cluster: u64, peer_urls: &[String], term: u64, index: u64) -> NodeId {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes =
        cluster.to_le_bytes().into_iter().chain(term.to_le_bytes()).chain(index.to_le_bytes());
    for byte in bytes.chain(peer_urls.iter().flat_map(|u| u.bytes())) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // Ids 1-9 are the bootstrap members' and 0 is no member.
    NodeId(hash.max(10))
}

/// A valid set of peer URLs (`http://host:port`, at least one), or etcd's refusal.
fn peer_urls(urls: &[String]) -> Result<Vec<String>, Status> {
    if urls.is_empty() || urls.iter().any(|url| host_port(url).is_none()) {
        let message = "etcdserver: given member URLs are invalid";
        return Err(status(&ApiError::new(tonic::Code::InvalidArgument, message)));
    }
    Ok(urls.to_vec())
}

impl<N: Net + Send + Sync> Api<N> {
    /// The members of the latest configuration, as etcd lists them.
    fn member_rows(&self) -> Vec<Member> {
        let membership = self.directory.membership();
        let members = self.directory.members();
        let learner = |id: &NodeId| membership.learners.contains(id);
        members.iter().map(|(id, info)| member(*id, info, learner(id))).collect()
    }

    /// The header of a change's answer.
    async fn change_header(&self) -> Result<Option<ResponseHeader>, Status> {
        let (status, term, _) = self.local_status().await?;
        Ok(self.header(status.header, term))
    }

    /// Whether this request is the leader's to serve; `Ok(Some(leader))` to forward to. A
    /// learner refuses all but its own publication.
    fn leader_for<T>(&self, request: &Request<T>) -> Result<Option<NodeId>, Status> {
        if !request.metadata().contains_key(PUBLISH_HEADER) {
            self.refuse_learner().map_err(|e| status(&e))?;
        }
        let leader = *self.leader.borrow();
        match leader {
            Some(leader) if leader == self.id => Ok(None),
            Some(_) if request.metadata().contains_key(FORWARDED_HEADER) => {
                Err(status(&ApiError::not_leader()))
            }
            Some(leader) => Ok(Some(leader)),
            None => Err(status(&ApiError::no_leader())),
        }
    }

    /// Proposes `change` with `attrs`, retrying while the leader cannot take a change yet
    /// (one in flight, no entry of its term committed, a learner within etcd's margin still
    /// short of the commit index), and waits until the entry is applied.
    async fn reconfigure(
        &self,
        change: MembershipChange,
        attrs: BTreeMap<NodeId, String>,
    ) -> Result<(), Status> {
        let timeout = self.forward.timeout();
        let start = tokio::time::Instant::now();
        let index = loop {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let call = Call::ChangeMembership {
                change: change.clone(),
                attrs: Some(attrs.clone()),
                reply,
            };
            if self.calls.try_send(call).is_err() {
                return Err(status(&ApiError::too_many_requests()));
            }
            match answer.await.map_err(|_| status(&ApiError::stopped()))? {
                Ok(index) => break index,
                Err(RaftError::ChangeInFlight(_) | RaftError::NotCommittedInTerm(_)) => {}
                Err(RaftError::LearnerBehind { matched, commit, .. }) => {
                    if (matched.0 as f64) < commit.0 as f64 * LEARNER_READY {
                        return Err(failed(
                            "etcdserver: can only promote a learner member which is in sync with leader",
                        ));
                    }
                }
                Err(RaftError::NotLeader { .. } | RaftError::ProposalDropped(_)) => {
                    return Err(status(&ApiError::leader_changed()));
                }
                Err(other) => return Err(failed(&format!("raftbed: {other}"))),
            }
            if start.elapsed() > timeout {
                return Err(status(&ApiError::timeout()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        while self.local_status().await?.0.raft_applied_index < index {
            if start.elapsed() > timeout {
                return Err(status(&ApiError::timeout()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// etcd's `--strict-reconfig-check` for adding a voter: the started voters must be a
    /// quorum of the voters after it (a cluster of one may take a second member).
    fn ready_to_add_voter(&self) -> Result<(), Status> {
        let membership = self.directory.membership();
        let members = self.directory.members();
        let voters = membership.voters.len() + 1;
        let started = membership
            .voters
            .iter()
            .filter(|v| members.get(v).is_some_and(MemberInfo::started))
            .count();
        if (started == 1 && voters == 2) || started > voters / 2 {
            return Ok(());
        }
        Err(not_enough_started())
    }

    /// etcd's check for removing voter `id`: the started voters left must be a quorum of the
    /// voters left.
    fn ready_to_remove_voter(&self, id: NodeId) -> Result<(), Status> {
        let membership = self.directory.membership();
        let members = self.directory.members();
        let left: Vec<&NodeId> = membership.voters.iter().filter(|v| **v != id).collect();
        let started = left.iter().filter(|v| members.get(v).is_some_and(MemberInfo::started));
        if started.count() > left.len() / 2 {
            return Ok(());
        }
        Err(not_enough_started())
    }

    /// Refuses peer URLs another member (not `except`) already has.
    fn unique_peer_urls(&self, urls: &[String], except: Option<NodeId>) -> Result<(), Status> {
        let members = self.directory.members();
        let mut others = members.iter().filter(|(id, _)| Some(**id) != except);
        if others.any(|(_, info)| info.peer_urls.iter().any(|u| urls.contains(u))) {
            return Err(failed("etcdserver: Peer URLs already exists"));
        }
        Ok(())
    }

    async fn add_member(&self, request: MemberAddRequest) -> Result<MemberAddResponse, Status> {
        let urls = peer_urls(&request.peer_ur_ls)?;
        let membership = self.directory.membership();
        if request.is_learner {
            if !membership.learners.is_empty() {
                return Err(failed("etcdserver: too many learner members in cluster"));
            }
        } else {
            self.ready_to_add_voter()?;
        }
        self.unique_peer_urls(&urls, None)?;
        let (now, term, _) = self.local_status().await?;
        let id = mint_id(self.cluster_id, &urls, term, now.raft_index);
        let info = MemberInfo { peer_urls: urls, ..MemberInfo::default() };
        let mut attrs = self.directory.attrs();
        attrs.insert(id, info.encode());
        let change = if request.is_learner {
            MembershipChange::AddLearner(id)
        } else {
            MembershipChange::AddVoter(id)
        };
        self.reconfigure(change, attrs).await?;
        Ok(MemberAddResponse {
            header: self.change_header().await?,
            member: Some(member(id, &info, request.is_learner)),
            members: self.member_rows(),
        })
    }

    async fn remove_member(&self, id: NodeId) -> Result<MemberRemoveResponse, Status> {
        let membership = self.directory.membership();
        if !membership.contains(id) {
            return Err(not_found());
        }
        if membership.is_voter(id) {
            self.ready_to_remove_voter(id)?;
        }
        self.reconfigure(MembershipChange::Remove(id), self.directory.attrs()).await?;
        Ok(MemberRemoveResponse {
            header: self.change_header().await?,
            members: self.member_rows(),
        })
    }

    /// etcd's MemberUpdate (new peer URLs), or with `published` a member publishing its
    /// name and client URLs once it runs (etcd's `publish`).
    async fn update_member(
        &self,
        request: MemberUpdateRequest,
        published: Option<MemberInfo>,
    ) -> Result<MemberUpdateResponse, Status> {
        let id = NodeId(request.id);
        let urls = peer_urls(&request.peer_ur_ls)?;
        let Some(mut info) = self.directory.info(id) else { return Err(not_found()) };
        self.unique_peer_urls(&urls, Some(id))?;
        info.peer_urls = urls;
        if let Some(published) = published {
            info.name = published.name;
            info.client_urls = published.client_urls;
        }
        let mut attrs = self.directory.attrs();
        attrs.insert(id, info.encode());
        self.reconfigure(MembershipChange::Update(id), attrs).await?;
        Ok(MemberUpdateResponse {
            header: self.change_header().await?,
            members: self.member_rows(),
        })
    }

    async fn promote_member(&self, id: NodeId) -> Result<MemberPromoteResponse, Status> {
        let membership = self.directory.membership();
        if !membership.contains(id) {
            return Err(not_found());
        }
        if !membership.learners.contains(&id) {
            return Err(failed("etcdserver: can only promote a learner member"));
        }
        self.ready_to_add_voter()?;
        self.reconfigure(MembershipChange::AddVoter(id), self.directory.attrs()).await?;
        Ok(MemberPromoteResponse {
            header: self.change_header().await?,
            members: self.member_rows(),
        })
    }

    /// After a forwarded change failed without a verdict, whether `done` comes to hold
    /// within an election's time: the header to answer with if it does.
    async fn settled<T>(
        &self,
        answer: &Result<T, Status>,
        done: impl Fn(&Self) -> bool,
    ) -> Option<Option<ResponseHeader>> {
        let error = answer.as_ref().err()?;
        if error.metadata().get(super::DEFINITE_HEADER).is_some_and(|v| v == "true") {
            return None;
        }
        for _ in 0..100 {
            if done(self) {
                return self.change_header().await.ok();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Asks the leader every second whether it still lists this node, while this node believes
    /// itself a member: a removed server may never receive the configuration that removed it
    /// (the leader stops replicating to it, §4.2.2), and etcd's peers tell such a member so.
    pub(crate) async fn watch_removal(&self, live: &crate::server::LiveFaults) {
        use crate::proto::etcdserverpb::StatusRequest;
        use crate::proto::etcdserverpb::maintenance_client::MaintenanceClient;
        let ask = Duration::from_millis(500);
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if !self.directory.membership().contains(self.id) {
                continue;
            }
            for (peer, _) in self.directory.members().into_iter().filter(|(id, _)| *id != self.id) {
                let Some(channel) = self.forward.channel(peer) else { continue };
                let mut status = MaintenanceClient::new(channel.clone());
                let Ok(Ok(answer)) =
                    tokio::time::timeout(ask, status.status(StatusRequest {})).await
                else {
                    continue;
                };
                if answer.get_ref().leader != peer.0 {
                    continue;
                }
                let mut cluster = ClusterClient::new(channel);
                let request = MemberListRequest::default();
                let Ok(Ok(list)) = tokio::time::timeout(ask, cluster.member_list(request)).await
                else {
                    break;
                };
                let list = list.into_inner();
                let ours = list.header.is_some_and(|h| h.cluster_id == self.cluster_id);
                if ours && !list.members.iter().any(|m| m.id == self.id.0) {
                    live.mark_removed();
                    return;
                }
                break;
            }
        }
    }

    /// Publishes this member's name and client URLs through the leader, until they are in
    /// its configuration (a member added by MemberAdd is "unstarted" until then).
    pub(crate) async fn publish(&self, name: String, client_addr: String) {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let Some(info) = self.directory.stored_info(self.id) else { continue };
            if info.started() {
                return;
            }
            let published = MemberInfo {
                name: name.clone(),
                client_urls: vec![format!("http://{client_addr}")],
                ..info.clone()
            };
            let update = MemberUpdateRequest { id: self.id.0, peer_ur_ls: info.peer_urls };
            let mut request = Request::new(update);
            if let Ok(value) = tonic::metadata::MetadataValue::try_from(published.encode()) {
                request.metadata_mut().insert(PUBLISH_HEADER, value);
            }
            let _ = self.member_update(request).await;
        }
    }
}

/// Request metadata on MemberUpdate: the member's own name and client URLs (a `MemberInfo`
/// as JSON), which it publishes once it runs.
const PUBLISH_HEADER: &str = "x-raftbed-publish";

#[tonic::async_trait]
impl<N: Net + Send + Sync> Cluster for Api<N> {
    async fn member_list(
        &self,
        _: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        self.refuse_learner().map_err(|e| status(&e))?;
        let header = self.change_header().await?;
        Ok(Response::new(MemberListResponse { header, members: self.member_rows() }))
    }

    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        match self.leader_for(&request)? {
            None => Ok(Response::new(self.add_member(request.into_inner()).await?)),
            Some(leader) => {
                let call = |c, r| async move { ClusterClient::new(c).member_add(r).await };
                self.forward.unary(leader, request, true, call).await
            }
        }
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        let id = NodeId(request.get_ref().id);
        match self.leader_for(&request)? {
            None => Ok(Response::new(self.remove_member(id).await?)),
            Some(leader) => {
                let call = |c, r| async move { ClusterClient::new(c).member_remove(r).await };
                let answer = self.forward.unary(leader, request, true, call).await;
                // A leader that removed itself steps down as it answers, and this node may
                // hear of its successor first: the removal's effect is the answer then.
                let gone = |this: &Self| !this.directory.membership().contains(id);
                let header = self.settled(&answer, gone).await;
                let members = self.member_rows();
                answer.or_else(|e| {
                    header
                        .map(|h| Response::new(MemberRemoveResponse { header: h, members }))
                        .ok_or(e)
                })
            }
        }
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        let published = request.metadata().get(PUBLISH_HEADER);
        let published = published.and_then(|v| v.to_str().ok()).and_then(MemberInfo::decode);
        match self.leader_for(&request)? {
            None => Ok(Response::new(self.update_member(request.into_inner(), published).await?)),
            Some(leader) => {
                let call = |c, r| async move { ClusterClient::new(c).member_update(r).await };
                self.forward.unary(leader, request, true, call).await
            }
        }
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        match self.leader_for(&request)? {
            None => Ok(Response::new(self.promote_member(NodeId(request.get_ref().id)).await?)),
            Some(leader) => {
                let call = |c, r| async move { ClusterClient::new(c).member_promote(r).await };
                self.forward.unary(leader, request, true, call).await
            }
        }
    }
}
