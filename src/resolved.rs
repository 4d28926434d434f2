//! The fates of a history's writes, read from the cluster's committed log: the resolved file
//! that `raftbed check --resolved` takes (`jepsen_lite::resolved`).
//!
//! Every write carries its session (client id, request number), and so does its log entry. The
//! state machine executes a session's request the first time it is applied with a number above
//! the session's last, answers a repeat from its cache, and refuses an older number
//! (`kv::KvStore::apply`). So a write took effect exactly when its (client, seq) is in the
//! committed log before any later request of the same client; it never will when it is not,
//! or only after one, provided the log is known from its first entry. A write still in some
//! node's uncommitted suffix at the end is counted as not committed: if it commits later, it
//! does so after every operation of the history, where nothing can observe it, which is the
//! same as never.

use std::collections::{HashMap, HashSet};

use jepsen_lite::{EventType, History, Process, Resolved};

/// One committed log entry, as far as sessions go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogSlot {
    /// A client request of (client, seq); client 0 has no session.
    Request(u64, u64),
    /// Not a client request (a leader's no-op, a lease expiry).
    Other,
    /// Not known (applied by no node seen, or compacted away).
    Unknown,
}

impl LogSlot {
    /// What a log entry's data says of its session: an empty entry is a leader's no-op, and
    /// data that is not a command is unknown.
    pub fn of(data: &[u8]) -> LogSlot {
        use prost::Message as _;
        if data.is_empty() {
            return LogSlot::Other;
        }
        match crate::proto::raftbed::Command::decode(data) {
            Ok(command) => LogSlot::Request(command.client_id, command.seq),
            Err(_) => LogSlot::Unknown,
        }
    }
}

/// The fate of every write `history` invoked with a session, given the committed log from
/// index 1 in order. Writes whose fate depends on an unknown slot are left out.
pub fn resolve(history: &History, log: impl IntoIterator<Item = LogSlot>) -> Resolved {
    let mut last: HashMap<u64, u64> = HashMap::new();
    let mut committed: HashSet<(u64, u64)> = HashSet::new();
    let mut refused: HashSet<(u64, u64)> = HashSet::new();
    let mut complete = true;
    for slot in log {
        match slot {
            LogSlot::Unknown => {
                // What follows may repeat or refuse what the gap held: stop here.
                complete = false;
                break;
            }
            LogSlot::Other | LogSlot::Request(0, _) => {}
            LogSlot::Request(client, seq) => {
                let newest = last.entry(client).or_insert(0);
                if seq > *newest {
                    *newest = seq;
                    committed.insert((client, seq));
                } else if !committed.contains(&(client, seq)) {
                    refused.insert((client, seq));
                }
            }
        }
    }
    let mut resolved = Resolved::new();
    for event in &history.events {
        let (EventType::Invoke, Process::Client(_)) = (event.kind, &event.process) else {
            continue;
        };
        let (Some(client), Some(seq)) = (event.meta.client, event.meta.seq) else { continue };
        let session = (client, seq);
        if committed.contains(&session) {
            resolved.insert(client, seq, true);
        } else if complete || refused.contains(&session) {
            resolved.insert(client, seq, false);
        }
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;
    use jepsen_lite::Value;
    use jepsen_lite::history::{Event, EventMeta};

    fn write(client: u64, seq: u64) -> Event {
        Event {
            process: Process::Client(client),
            kind: EventType::Invoke,
            f: "put".into(),
            key: Some(Value::Str("k".into())),
            value: Value::Str(format!("{client}.{seq}")),
            time: None,
            line: 0,
            meta: EventMeta { client: Some(client), seq: Some(seq), ..EventMeta::default() },
        }
    }

    #[test]
    fn a_write_counts_once_before_later_requests_of_its_session() {
        let history = History { events: (1..=4).map(|s| write(7, s)).collect() };
        use LogSlot::{Other, Request};
        // 7.1 twice (a retry answered from the cache), 7.3, then 7.2 late (refused), no 7.4.
        let log = [Other, Request(7, 1), Request(7, 1), Request(7, 3), Request(7, 2)];
        let resolved = resolve(&history, log);
        let fates: Vec<_> = (1..=4).map(|s| resolved.fate((7, s))).collect();
        assert_eq!(fates, [Some(true), Some(false), Some(true), Some(false)]);
        // With a gap, only what the prefix before it settles is listed.
        let resolved = resolve(&history, [Request(7, 1), Request(7, 2), LogSlot::Unknown]);
        let fates: Vec<_> = (1..=4).map(|s| resolved.fate((7, s))).collect();
        assert_eq!(fates, [Some(true), Some(true), None, None]);
    }
}
