//! The replicated state machine: a key-value map with client sessions. A log entry holds a
//! client's `ClientRequest` as it arrived. Deterministic: the same
//! commands in the same order give the same state and the same results on every node.
//!
//! Sessions: each command carries (client id, sequence number). The state machine remembers the
//! last sequence number applied per client with its result, so a command retried after a lost
//! reply applies once and answers the same.

use std::collections::BTreeMap;

use bytes::Bytes;
use prost::Message as _;

use crate::transport::rbpb;

/// The result of applying a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandResult {
    /// A put was applied.
    Put,
    /// A get read the key: `None` if absent.
    Get(Option<Bytes>),
    /// A command older than the client's last one; it is not applied.
    Stale,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Session {
    seq: u64,
    result: CommandResult,
}

/// The key-value map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    data: BTreeMap<Bytes, Bytes>,
    sessions: BTreeMap<u64, Session>,
}

/// A command that cannot be decoded. Commands are written by this code, so this means a
/// corrupt log; the node must stop.
#[derive(Debug, thiserror::Error)]
#[error("undecodable command: {0}")]
pub struct BadCommand(pub String);

impl KvStore {
    /// Applies one committed entry's data (an empty entry is a leader's no-op).
    ///
    /// # Errors
    /// If the data is not a command.
    pub fn apply(&mut self, data: &[u8]) -> Result<Option<(u64, u64, CommandResult)>, BadCommand> {
        if data.is_empty() {
            return Ok(None);
        }
        let command = rbpb::ClientRequest::decode(data).map_err(|e| BadCommand(e.to_string()))?;
        let (client, seq) = (command.client_id, command.seq);
        if let Some(session) = self.sessions.get(&client) {
            if seq == session.seq {
                return Ok(Some((client, seq, session.result.clone())));
            }
            if seq < session.seq {
                return Ok(Some((client, seq, CommandResult::Stale)));
            }
        }
        let result = match command.op {
            Some(rbpb::client_request::Op::Put(put)) => {
                self.data.insert(put.key, put.value);
                CommandResult::Put
            }
            Some(rbpb::client_request::Op::Get(get)) => {
                CommandResult::Get(self.data.get(&get.key).cloned())
            }
            None => return Err(BadCommand("command without an op".into())),
        };
        self.sessions.insert(client, Session { seq, result: result.clone() });
        Ok(Some((client, seq, result)))
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        self.data.get(key)
    }

    /// The state as snapshot bytes.
    pub fn encode(&self) -> Bytes {
        let snapshot = rbpb::KvSnapshot {
            pairs: self
                .data
                .iter()
                .map(|(k, v)| rbpb::KvPair { key: k.clone(), value: v.clone() })
                .collect(),
            sessions: self
                .sessions
                .iter()
                .map(|(client, s)| {
                    let (get, found, value) = match &s.result {
                        CommandResult::Get(Some(v)) => (true, true, v.clone()),
                        CommandResult::Get(None) => (true, false, Bytes::new()),
                        CommandResult::Put | CommandResult::Stale => (false, false, Bytes::new()),
                    };
                    rbpb::Session { client_id: *client, seq: s.seq, found, value, get }
                })
                .collect(),
        };
        Bytes::from(snapshot.encode_to_vec())
    }

    /// Restores from `encode`'s bytes.
    ///
    /// # Errors
    /// If the bytes are not a snapshot.
    pub fn decode(data: &[u8]) -> Result<KvStore, BadCommand> {
        let snapshot = rbpb::KvSnapshot::decode(data).map_err(|e| BadCommand(e.to_string()))?;
        let data = snapshot.pairs.into_iter().map(|p| (p.key, p.value)).collect();
        let sessions = snapshot
            .sessions
            .into_iter()
            .map(|s| {
                let result = match (s.get, s.found) {
                    (true, true) => CommandResult::Get(Some(s.value)),
                    (true, false) => CommandResult::Get(None),
                    (false, _) => CommandResult::Put,
                };
                (s.client_id, Session { seq: s.seq, result })
            })
            .collect();
        Ok(KvStore { data, sessions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(client_id: u64, seq: u64, op: rbpb::client_request::Op) -> Bytes {
        Bytes::from(rbpb::ClientRequest { client_id, seq, op: Some(op) }.encode_to_vec())
    }

    fn put(client: u64, seq: u64, key: &str, value: &str) -> Bytes {
        let (key, value) = (Bytes::from(key.to_string()), Bytes::from(value.to_string()));
        command(client, seq, rbpb::client_request::Op::Put(rbpb::Put { key, value }))
    }

    fn get(client: u64, seq: u64, key: &str) -> Bytes {
        let key = Bytes::from(key.to_string());
        command(client, seq, rbpb::client_request::Op::Get(rbpb::Get { key }))
    }

    #[test]
    fn a_retried_command_applies_once() {
        let mut kv = KvStore::default();
        kv.apply(&put(1, 1, "k", "a")).unwrap();
        kv.apply(&put(2, 1, "k", "b")).unwrap();
        assert_eq!(kv.apply(&put(1, 1, "k", "a")).unwrap().unwrap().2, CommandResult::Put);
        assert_eq!(kv.get(b"k").unwrap(), &Bytes::from("b"), "the retry did not overwrite b");
        assert_eq!(kv.apply(&put(1, 0, "k", "z")).unwrap().unwrap().2, CommandResult::Stale);
    }

    #[test]
    fn snapshot_round_trips_with_sessions() {
        let mut kv = KvStore::default();
        kv.apply(&put(1, 1, "k", "a")).unwrap();
        kv.apply(&get(2, 4, "k")).unwrap();
        kv.apply(&get(3, 1, "missing")).unwrap();
        let restored = KvStore::decode(&kv.encode()).unwrap();
        assert_eq!(restored, kv);
        assert!(kv.apply(b"\xff\xff").is_err());
    }
}
