//! The state machine at rest, in sled (as etcd keeps its in bbolt): one tree holding every kept
//! revision (`r/` + main + sub, big-endian, so sled's order is revision order), lease, session
//! and fence under a prefix, plus the revision, the compaction point, the applied index and the
//! format, written together in one atomic batch after each round of applied entries.
//!
//! Format 1 (no `m/format`) kept only the current key-values under `k/`; it is migrated on
//! open, as a history compacted at its revision. A newer format is refused, never misread. sled is not synced on
//! every batch: the WAL is, and a restarted node replays the log from the applied index sled
//! recorded. Real nodes only; the simulator keeps the state machine in memory and rebuilds it
//! from snapshot and log.

use std::path::{Path, PathBuf};

use prost::Message as _;
use rustix::process::Pid;

use crate::kv::{Changes, FORMAT, KvStore, Rev};
use crate::proto::mvccpb::KeyValue;
use crate::proto::raftbed::{Fence, KvSnapshot, LeaseState, Revision, Session};

const APPLIED: &[u8] = b"m/applied";
const REVISION: &[u8] = b"m/revision";
const COMPACTED: &[u8] = b"m/compacted";
const FORMAT_KEY: &[u8] = b"m/format";
/// The nice value of the writer thread and sled's threads (0 is normal, 19 the lowest).
const BACKGROUND_NICE: i32 = 10;

/// A node's state machine at rest.
pub struct StateStore {
    db: sled::Db,
    path: PathBuf,
}

/// A state store that failed.
#[derive(Debug, thiserror::Error)]
#[error("state machine store {path}: {detail}")]
pub struct StateError {
    path: PathBuf,
    detail: String,
}

fn key(prefix: &[u8], id: &[u8]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(id);
    k
}

impl StateStore {
    /// Opens (or creates) the store in `dir/state`.
    ///
    /// # Errors
    /// If sled cannot open it.
    pub fn open(dir: &Path) -> Result<StateStore, StateError> {
        let path = dir.join("state");
        let db = sled::Config::new()
            .path(&path)
            .mode(sled::Mode::HighThroughput)
            // The WAL is the durable record; sled is flushed when the log is compacted and when
            // the node stops, and otherwise when its buffers fill.
            .flush_every_ms(None)
            .open()
            .map_err(|e| StateError { path: path.clone(), detail: e.to_string() })?;
        Ok(StateStore { db, path })
    }

    fn fail(&self, detail: impl ToString) -> StateError {
        StateError { path: self.path.clone(), detail: detail.to_string() }
    }

    /// The applied index and the state it reflects; `None` for a new store. A format-1 store
    /// is migrated to this build's format first.
    ///
    /// # Errors
    /// If the store cannot be read, holds something undecodable, or has a newer format.
    pub fn load(&self) -> Result<Option<(u64, KvStore)>, StateError> {
        let Some(applied) = self.db.get(APPLIED).map_err(|e| self.fail(e))? else {
            return Ok(None);
        };
        let applied = self.number(&applied)?;
        let format = self.counter(FORMAT_KEY)?.unwrap_or(1);
        if format > u64::from(FORMAT) {
            return Err(self.fail(format!(
                "format {format} was written by a newer raftbed (this build reads formats 1 and {FORMAT}); nothing was changed"
            )));
        }
        let snapshot = self.read_snapshot(format)?;
        let store = KvStore::from_snapshot(snapshot).map_err(|e| self.fail(e))?;
        if format < u64::from(FORMAT) {
            self.replace(applied, &store.to_snapshot())?;
        }
        Ok(Some((applied, store)))
    }

    fn number(&self, bytes: &[u8]) -> Result<u64, StateError> {
        bytes.try_into().map(u64::from_le_bytes).map_err(|_| self.fail("a counter is not 8 bytes"))
    }

    fn counter(&self, key: &[u8]) -> Result<Option<u64>, StateError> {
        match self.db.get(key).map_err(|e| self.fail(e))? {
            Some(bytes) => Ok(Some(self.number(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Everything stored, as a snapshot of `format` (1: keys under `k/`; 2: revisions).
    fn read_snapshot(&self, format: u64) -> Result<KvSnapshot, StateError> {
        let revision = self.counter(REVISION)?.map_or(1, |r| r as i64);
        let mut snapshot = KvSnapshot { revision, ..KvSnapshot::default() };
        if format == u64::from(FORMAT) {
            snapshot.format = FORMAT;
            snapshot.compacted = self.counter(COMPACTED)?.unwrap_or(0) as i64;
        }
        let bad = |what: &str, e: prost::DecodeError| self.fail(format!("undecodable {what}: {e}"));
        for item in self.db.iter() {
            let (k, v) = item.map_err(|e| self.fail(e))?;
            match k.first() {
                Some(b'k') if format == 1 => {
                    snapshot.kvs.push(KeyValue::decode(&*v).map_err(|e| bad("key", e))?)
                }
                Some(b'r') => {
                    snapshot.history.push(Revision::decode(&*v).map_err(|e| bad("revision", e))?)
                }
                Some(b'l') => {
                    snapshot.leases.push(LeaseState::decode(&*v).map_err(|e| bad("lease", e))?)
                }
                Some(b's') => {
                    snapshot.sessions.push(Session::decode(&*v).map_err(|e| bad("session", e))?)
                }
                Some(b'f') => {
                    snapshot.fences.push(Fence::decode(&*v).map_err(|e| bad("fence", e))?)
                }
                _ => {}
            }
        }
        Ok(snapshot)
    }

    /// Records `changes` and the applied index in one batch.
    ///
    /// # Errors
    /// If sled fails.
    pub fn save(&self, applied: u64, changes: &Changes) -> Result<(), StateError> {
        let mut batch = sled::Batch::default();
        for (rev, v) in &changes.revisions {
            put(&mut batch, revision_key(*rev), v);
        }
        for (id, v) in &changes.leases {
            put(&mut batch, key(b"l/", &id.to_be_bytes()), v);
        }
        for (client, v) in &changes.sessions {
            put(&mut batch, key(b"s/", &client.to_be_bytes()), v);
        }
        for (name, v) in &changes.fences {
            put(&mut batch, key(b"f/", name), v);
        }
        batch.insert(REVISION, &(changes.revision as u64).to_le_bytes());
        batch.insert(COMPACTED, &(changes.compacted as u64).to_le_bytes());
        batch.insert(FORMAT_KEY, &u64::from(FORMAT).to_le_bytes());
        batch.insert(APPLIED, &applied.to_le_bytes());
        self.db.apply_batch(batch).map_err(|e| self.fail(e))
    }

    /// Makes what was saved durable.
    ///
    /// # Errors
    /// If sled fails.
    pub fn flush(&self) -> Result<(), StateError> {
        self.db.flush().map(|_| ()).map_err(|e| self.fail(e))
    }

    /// Replaces everything with `snapshot` (a state machine's `to_snapshot`) at `applied`
    /// (after a snapshot was installed, or to rebuild from one).
    ///
    /// # Errors
    /// If sled fails.
    pub fn replace(&self, applied: u64, snapshot: &KvSnapshot) -> Result<(), StateError> {
        self.db.clear().map_err(|e| self.fail(e))?;
        assert_eq!(snapshot.format, FORMAT, "only this build's snapshots are written");
        let changes = Changes {
            revision: snapshot.revision,
            compacted: snapshot.compacted,
            revisions: snapshot
                .history
                .iter()
                .map(|r| (Rev { main: r.main, sub: r.sub }, Some(r.encode_to_vec())))
                .collect(),
            leases: snapshot.leases.iter().map(|l| (l.id, Some(l.encode_to_vec()))).collect(),
            sessions: snapshot
                .sessions
                .iter()
                .map(|s| (s.client_id, Some(s.encode_to_vec())))
                .collect(),
            fences: snapshot
                .fences
                .iter()
                .map(|f| (f.name.clone(), Some(f.encode_to_vec())))
                .collect(),
        };
        self.save(applied, &changes)?;
        self.flush()
    }
}

/// sled work is background work: the WAL holds every applied entry, so sled may lag behind it,
/// and when the CPU is short the Raft path must go first. On Linux the nice value is per thread
/// (setpriority(2), NOTES), so this lowers the calling thread and sled's IO threads (which sled
/// starts when the store is opened), not the node. Failing leaves a priority as it was.
fn lower_priority() {
    let _ = rustix::process::setpriority_process(None, BACKGROUND_NICE);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return };
    for task in tasks.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let tid = task.file_name().to_str().and_then(|t| t.parse().ok());
        if let (true, Some(tid)) = (name.starts_with("sled-io"), tid.and_then(Pid::from_raw)) {
            let _ = rustix::process::setpriority_process(Some(tid), BACKGROUND_NICE);
        }
    }
}

enum Job {
    Save(u64, Changes),
    Replace(u64, KvSnapshot, std::sync::mpsc::Sender<Result<(), StateError>>),
    Flush(std::sync::mpsc::Sender<Result<(), StateError>>),
}

/// A `StateStore` written by a thread of its own, so a node's driver never waits on sled:
/// saves are queued in order; replacing and flushing wait for everything before them.
pub struct StateWriter {
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    failed: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    /// Saves queued and not yet written.
    queued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: PathBuf,
}

impl StateWriter {
    /// Hands `store` to a writer thread.
    pub fn start(store: StateStore) -> StateWriter {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let failed: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
        let path = store.path.clone();
        let seen = failed.clone();
        let queued: std::sync::Arc<std::sync::atomic::AtomicUsize> = Default::default();
        let written = queued.clone();
        let thread = std::thread::spawn(move || {
            lower_priority();
            for job in queue {
                match job {
                    Job::Save(applied, changes) => {
                        if let Err(e) = store.save(applied, &changes) {
                            *seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                                Some(e.detail);
                        }
                        written.fetch_sub(1, std::sync::atomic::Ordering::Release);
                    }
                    Job::Replace(applied, snapshot, done) => {
                        let _ = done.send(store.replace(applied, &snapshot));
                    }
                    Job::Flush(done) => {
                        let _ = done.send(store.flush());
                    }
                }
            }
            let _ = store.flush();
        });
        StateWriter { jobs: Some(jobs), failed, queued, thread: Some(thread), path }
    }

    fn check(&self) -> Result<(), StateError> {
        match self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone() {
            Some(detail) => Err(StateError { path: self.path.clone(), detail }),
            None => Ok(()),
        }
    }

    fn send(&self, job: Job) -> Result<(), StateError> {
        self.check()?;
        let gone =
            || StateError { path: self.path.clone(), detail: "the writer thread stopped".into() };
        self.jobs.as_ref().ok_or_else(gone)?.send(job).map_err(|_| gone())
    }

    fn wait(
        &self,
        make: impl FnOnce(std::sync::mpsc::Sender<Result<(), StateError>>) -> Job,
    ) -> Result<(), StateError> {
        let (done, answer) = std::sync::mpsc::channel();
        self.send(make(done))?;
        answer.recv().map_err(|_| StateError {
            path: self.path.clone(),
            detail: "the writer thread stopped".into(),
        })?
    }

    /// Queues `changes` at `applied`.
    ///
    /// # Errors
    /// If an earlier save failed.
    pub fn save(&self, applied: u64, changes: Changes) -> Result<(), StateError> {
        self.queued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.send(Job::Save(applied, changes))
    }

    /// Whether a save is still waiting to be written. The driver then keeps collecting changes
    /// instead of queueing more: a key written again meanwhile is saved once, and a writer that
    /// lags (it runs at a lower priority) holds at most one batch beyond the live state.
    pub fn busy(&self) -> bool {
        self.queued.load(std::sync::atomic::Ordering::Acquire) > 0
    }

    /// Replaces everything with `snapshot` at `applied`, once the queue before it is written.
    ///
    /// # Errors
    /// If sled fails.
    pub fn replace(&self, applied: u64, snapshot: KvSnapshot) -> Result<(), StateError> {
        self.wait(|done| Job::Replace(applied, snapshot, done))
    }

    /// Makes everything queued durable.
    ///
    /// # Errors
    /// If sled fails.
    pub fn flush(&self) -> Result<(), StateError> {
        self.wait(Job::Flush)
    }
}

impl Drop for StateWriter {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `r/` + main + sub, big-endian: sled's key order is revision order.
fn revision_key(rev: Rev) -> Vec<u8> {
    let mut k = b"r/".to_vec();
    k.extend_from_slice(&rev.main.to_be_bytes());
    k.extend_from_slice(&rev.sub.to_be_bytes());
    k
}

fn put(batch: &mut sled::Batch, key: Vec<u8>, value: &Option<Vec<u8>>) {
    match value {
        Some(v) => batch.insert(key, v.as_slice()),
        None => batch.remove(key),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::proto::etcdserverpb::{DeleteRangeRequest, LeaseGrantRequest, PutRequest};
    use crate::proto::raftbed::{Command, LeaseExpire, LockRequest, command::Op};

    fn apply(kv: &mut KvStore, index: u64, client_id: u64, op: Op) {
        let data = Command { client_id, seq: index, op: Some(op) }.encode_to_vec();
        kv.apply(index, &data).expect("applies");
    }

    fn put(key: &str, value: &str, lease: i64) -> Op {
        let (key, value) = (Bytes::from(key.to_string()), Bytes::from(value.to_string()));
        Op::Put(PutRequest { key, value, lease, ..Default::default() })
    }

    #[test]
    fn saved_changes_load_back_as_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        assert!(store.load().unwrap().is_none(), "a new store is empty");
        let mut kv = KvStore::default();
        kv.track_changes();
        apply(&mut kv, 1, 7, put("a", "1", 0));
        apply(&mut kv, 2, 7, Op::LeaseGrant(LeaseGrantRequest { ttl: 5, id: 0 }));
        apply(&mut kv, 3, 8, put("b", "2", 2));
        store.save(3, &kv.take_changes()).unwrap();
        apply(&mut kv, 4, 8, Op::Lock(LockRequest { name: Bytes::from_static(b"l"), lease: 2 }));
        apply(&mut kv, 5, 9, put("c", "3", 0));
        let delete = DeleteRangeRequest { key: Bytes::from_static(b"a"), ..Default::default() };
        apply(&mut kv, 6, 9, Op::DeleteRange(delete));
        apply(&mut kv, 7, 0, Op::LeaseExpire(LeaseExpire { id: 2 }));
        store.save(7, &kv.take_changes()).unwrap();
        drop(store);
        let (applied, loaded) = StateStore::open(dir.path()).unwrap().load().unwrap().unwrap();
        assert_eq!(applied, 7);
        assert_eq!(loaded.encode(), kv.encode(), "keys, leases, sessions, fences and revision");
        assert!(loaded.get(b"a").is_none() && loaded.get(b"b").is_none(), "deleted, expired");
        assert_eq!(loaded.get(b"c").map(|kv| kv.value.clone()), Some(Bytes::from_static(b"3")));
    }

    #[test]
    fn replace_drops_what_the_snapshot_does_not_hold() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let mut kv = KvStore::default();
        kv.track_changes();
        apply(&mut kv, 1, 1, put("old", "x", 0));
        store.save(1, &kv.take_changes()).unwrap();
        let mut fresh = KvStore::default();
        apply(&mut fresh, 1, 2, put("new", "y", 0));
        store.replace(40, &fresh.to_snapshot()).unwrap();
        let (applied, loaded) = store.load().unwrap().unwrap();
        assert_eq!(applied, 40);
        assert_eq!(loaded.encode(), fresh.encode());
    }

    #[test]
    fn the_writer_is_busy_only_until_a_save_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let writer = StateWriter::start(StateStore::open(dir.path()).unwrap());
        assert!(!writer.busy(), "nothing queued");
        let mut kv = KvStore::default();
        kv.track_changes();
        apply(&mut kv, 1, 1, put("a", "1", 0));
        writer.save(1, kv.take_changes()).unwrap();
        // A flush waits for every save queued before it: a writer still busy after it would
        // stop the driver from ever saving again (it saves only when the writer is idle).
        writer.flush().unwrap();
        assert!(!writer.busy(), "the save was written");
        drop(writer);
        let (applied, loaded) = StateStore::open(dir.path()).unwrap().load().unwrap().unwrap();
        assert_eq!((applied, loaded.encode()), (1, kv.encode()));
    }

    #[test]
    fn a_format_1_store_is_migrated_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let kv = KeyValue {
            key: Bytes::from_static(b"a"),
            value: Bytes::from_static(b"1"),
            create_revision: 2,
            mod_revision: 2,
            version: 1,
            lease: 0,
        };
        store.db.insert(b"k/a", kv.encode_to_vec()).unwrap();
        store.db.insert(REVISION, &4u64.to_le_bytes()).unwrap();
        store.db.insert(APPLIED, &9u64.to_le_bytes()).unwrap();
        let (applied, loaded) = store.load().unwrap().unwrap();
        assert_eq!((applied, loaded.revision(), loaded.compacted()), (9, 4, 4));
        assert_eq!(loaded.get(b"a"), Some(&kv));
        assert_eq!(store.counter(FORMAT_KEY).unwrap(), Some(u64::from(FORMAT)), "rewritten");
        assert!(store.db.get(b"k/a").unwrap().is_none(), "the old layout is gone");
        let (_, again) = store.load().unwrap().unwrap();
        assert_eq!(again.encode(), loaded.encode(), "the migrated store reads back the same");
        store.db.insert(FORMAT_KEY, &99u64.to_le_bytes()).unwrap();
        let error = store.load().expect_err("refused").to_string();
        assert!(error.contains("format 99") && error.contains("newer raftbed"), "{error}");
        assert_eq!(
            store.db.get(b"m/applied").unwrap().map(|v| v.to_vec()),
            Some(9u64.to_le_bytes().to_vec()),
            "nothing changed"
        );
    }
}
