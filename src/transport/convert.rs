//! `pb::Envelope` <-> `raft::Message`. Decoding is the gateway: a message that could not have
//! come from a correct peer (no body, node id 0, entries out of order) is refused here, with a
//! reason, before it reaches the core.

use crate::raft::{
    Body, Entry, EntryKind, LogIndex, Membership, Message, NodeId, Snapshot, SnapshotMeta, Term,
};

use super::pb;
use super::pb::envelope::Body as PbBody;

/// A peer message that cannot be accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed peer message: {0}")]
pub struct DecodeError(pub String);

impl From<&Message> for pb::Envelope {
    fn from(message: &Message) -> pb::Envelope {
        let body = match &message.body {
            Body::RequestVote { pre_vote, last_log_index, last_log_term, leadership_transfer } => {
                PbBody::RequestVote(pb::RequestVote {
                    pre_vote: *pre_vote,
                    last_log_index: last_log_index.0,
                    last_log_term: last_log_term.0,
                    leadership_transfer: *leadership_transfer,
                })
            }
            Body::RequestVoteResponse { pre_vote, granted } => {
                PbBody::RequestVoteResponse(pb::RequestVoteResponse {
                    pre_vote: *pre_vote,
                    granted: *granted,
                })
            }
            Body::AppendEntries { prev_log_index, prev_log_term, entries, leader_commit } => {
                PbBody::AppendEntries(pb::AppendEntries {
                    prev_log_index: prev_log_index.0,
                    prev_log_term: prev_log_term.0,
                    entries: entries.iter().map(pb::Entry::from).collect(),
                    leader_commit: leader_commit.0,
                })
            }
            Body::AppendEntriesResponse { success, index, reject_hint_index, reject_hint_term } => {
                PbBody::AppendEntriesResponse(pb::AppendEntriesResponse {
                    success: *success,
                    index: index.0,
                    reject_hint_index: reject_hint_index.0,
                    reject_hint_term: reject_hint_term.0,
                })
            }
            Body::Heartbeat { leader_commit, context } => PbBody::Heartbeat(pb::Heartbeat {
                leader_commit: leader_commit.0,
                context: *context,
            }),
            Body::HeartbeatResponse { context } => {
                PbBody::HeartbeatResponse(pb::HeartbeatResponse { context: *context })
            }
            Body::InstallSnapshot { snapshot } => PbBody::InstallSnapshot(pb::InstallSnapshot {
                meta: Some(pb::SnapshotMeta {
                    index: snapshot.meta.index.0,
                    term: snapshot.meta.term.0,
                }),
                data: snapshot.data.clone(),
                membership: Some(pb::Membership::from(&snapshot.membership)),
            }),
            Body::TimeoutNow => PbBody::TimeoutNow(pb::TimeoutNow {}),
        };
        pb::Envelope {
            from: message.from.0,
            to: message.to.0,
            term: message.term.0,
            body: Some(body),
        }
    }
}

impl From<&Entry> for pb::Entry {
    fn from(entry: &Entry) -> pb::Entry {
        pb::Entry {
            term: entry.term.0,
            index: entry.index.0,
            data: entry.data.clone(),
            config: entry.kind == EntryKind::Config,
        }
    }
}

impl From<pb::Entry> for Entry {
    fn from(entry: pb::Entry) -> Entry {
        let kind = if entry.config { EntryKind::Config } else { EntryKind::Command };
        Entry { term: Term(entry.term), index: LogIndex(entry.index), data: entry.data, kind }
    }
}

impl From<&Membership> for pb::Membership {
    fn from(m: &Membership) -> pb::Membership {
        let ids = |set: &std::collections::BTreeSet<NodeId>| set.iter().map(|id| id.0).collect();
        pb::Membership {
            voters: ids(&m.voters),
            outgoing: ids(&m.outgoing),
            learners: ids(&m.learners),
            attrs: m
                .attrs
                .iter()
                .map(|(id, attrs)| pb::MemberAttrs { id: id.0, attrs: attrs.clone() })
                .collect(),
        }
    }
}

impl From<pb::Membership> for Membership {
    fn from(m: pb::Membership) -> Membership {
        let ids = |list: Vec<u64>| list.into_iter().filter(|id| *id != 0).map(NodeId).collect();
        let mut membership = Membership {
            voters: ids(m.voters),
            outgoing: ids(m.outgoing),
            learners: ids(m.learners),
            attrs: m.attrs.into_iter().map(|a| (NodeId(a.id), a.attrs)).collect(),
        };
        membership.keep_members_attrs();
        membership
    }
}

impl TryFrom<pb::Envelope> for Message {
    type Error = DecodeError;

    fn try_from(envelope: pb::Envelope) -> Result<Message, DecodeError> {
        let fail = |why: String| Err(DecodeError(why));
        if envelope.from == 0 || envelope.to == 0 {
            return fail(format!("node id 0 (from {} to {})", envelope.from, envelope.to));
        }
        let Some(body) = envelope.body else {
            return fail("no body".into());
        };
        let body = match body {
            PbBody::RequestVote(m) => Body::RequestVote {
                pre_vote: m.pre_vote,
                last_log_index: LogIndex(m.last_log_index),
                last_log_term: Term(m.last_log_term),
                leadership_transfer: m.leadership_transfer,
            },
            PbBody::RequestVoteResponse(m) => {
                Body::RequestVoteResponse { pre_vote: m.pre_vote, granted: m.granted }
            }
            PbBody::AppendEntries(m) => {
                let entries: Vec<Entry> = m.entries.into_iter().map(Entry::from).collect();
                check_entries(m.prev_log_index, m.prev_log_term, envelope.term, &entries)?;
                Body::AppendEntries {
                    prev_log_index: LogIndex(m.prev_log_index),
                    prev_log_term: Term(m.prev_log_term),
                    entries,
                    leader_commit: LogIndex(m.leader_commit),
                }
            }
            PbBody::AppendEntriesResponse(m) => Body::AppendEntriesResponse {
                success: m.success,
                index: LogIndex(m.index),
                reject_hint_index: LogIndex(m.reject_hint_index),
                reject_hint_term: Term(m.reject_hint_term),
            },
            PbBody::Heartbeat(m) => {
                Body::Heartbeat { leader_commit: LogIndex(m.leader_commit), context: m.context }
            }
            PbBody::HeartbeatResponse(m) => Body::HeartbeatResponse { context: m.context },
            PbBody::InstallSnapshot(m) => {
                let Some(meta) = m.meta else {
                    return fail("InstallSnapshot without meta".into());
                };
                if meta.term > envelope.term {
                    return fail(format!("snapshot term {} above message term", meta.term));
                }
                let meta = SnapshotMeta { index: LogIndex(meta.index), term: Term(meta.term) };
                let membership = m.membership.map(Membership::from).unwrap_or_default();
                Body::InstallSnapshot { snapshot: Snapshot { meta, data: m.data, membership } }
            }
            PbBody::TimeoutNow(_) => Body::TimeoutNow,
        };
        Ok(Message {
            from: NodeId(envelope.from),
            to: NodeId(envelope.to),
            term: Term(envelope.term),
            body,
        })
    }
}

/// Entries must follow `prev` one by one with non-decreasing terms no newer than the sender's.
fn check_entries(
    prev_index: u64,
    prev_term: u64,
    term: u64,
    entries: &[Entry],
) -> Result<(), DecodeError> {
    let (mut index, mut last_term) = (prev_index, prev_term);
    for entry in entries {
        if entry.index.0 != index + 1 || entry.term.0 < last_term || entry.term.0 > term {
            return Err(DecodeError(format!(
                "entry {}/{} does not follow {last_term}/{index} in a term-{term} message",
                entry.term, entry.index
            )));
        }
        if entry.kind == EntryKind::Config
            && let Err(e) = Membership::decode(&entry.data)
        {
            return Err(DecodeError(format!("entry {}/{}: {e}", entry.term, entry.index)));
        }
        index = entry.index.0;
        last_term = entry.term.0;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use prost::Message as _;

    use super::*;

    fn roundtrip(message: Message) {
        let bytes = pb::Envelope::from(&message).encode_to_vec();
        let decoded = pb::Envelope::decode(bytes.as_slice()).unwrap();
        assert_eq!(Message::try_from(decoded).unwrap(), message);
    }

    fn joint() -> Membership {
        let ids = |list: &[u64]| list.iter().map(|id| NodeId(*id)).collect();
        let mut joint =
            Membership { voters: ids(&[4, 5]), outgoing: ids(&[1, 2, 3]), ..Default::default() };
        joint.learners = ids(&[6]);
        joint.attrs.insert(NodeId(6), "{\"name\":\"n6\"}".into());
        joint
    }

    #[test]
    fn every_body_survives_the_wire() {
        let m = |body| Message { from: NodeId(1), to: NodeId(2), term: Term(3), body };
        let entry = |i| Entry::command(Term(3), LogIndex(i), Bytes::from_static(b"x"));
        roundtrip(m(Body::RequestVote {
            pre_vote: true,
            last_log_index: LogIndex(4),
            last_log_term: Term(2),
            leadership_transfer: true,
        }));
        roundtrip(m(Body::RequestVoteResponse { pre_vote: false, granted: true }));
        roundtrip(m(Body::AppendEntries {
            prev_log_index: LogIndex(4),
            prev_log_term: Term(2),
            entries: vec![entry(5), entry(6), Entry::config(Term(3), LogIndex(7), &joint())],
            leader_commit: LogIndex(4),
        }));
        roundtrip(m(Body::AppendEntriesResponse {
            success: false,
            index: LogIndex(9),
            reject_hint_index: LogIndex(5),
            reject_hint_term: Term(2),
        }));
        roundtrip(m(Body::Heartbeat { leader_commit: LogIndex(7), context: 11 }));
        roundtrip(m(Body::HeartbeatResponse { context: 11 }));
        roundtrip(m(Body::InstallSnapshot {
            snapshot: Snapshot {
                meta: SnapshotMeta { index: LogIndex(10), term: Term(2) },
                data: Bytes::from_static(b"state"),
                membership: joint(),
            },
        }));
        roundtrip(m(Body::TimeoutNow));
    }

    #[test]
    fn gateway_refuses_impossible_messages() {
        let mut envelope = pb::Envelope { from: 1, to: 2, term: 3, body: None };
        assert!(Message::try_from(envelope.clone()).unwrap_err().0.contains("no body"));
        envelope.body = Some(PbBody::AppendEntries(pb::AppendEntries {
            prev_log_index: 4,
            prev_log_term: 2,
            entries: vec![pb::Entry { term: 3, index: 6, data: Bytes::new(), config: false }],
            leader_commit: 0,
        }));
        assert!(Message::try_from(envelope.clone()).unwrap_err().0.contains("does not follow"));
        envelope.body = Some(PbBody::AppendEntries(pb::AppendEntries {
            prev_log_index: 4,
            prev_log_term: 2,
            entries: vec![pb::Entry { term: 3, index: 5, data: "voters=x".into(), config: true }],
            leader_commit: 0,
        }));
        assert!(Message::try_from(envelope.clone()).unwrap_err().0.contains("bad node id"));
        envelope.from = 0;
        assert!(Message::try_from(envelope).unwrap_err().0.contains("node id 0"));
    }
}
