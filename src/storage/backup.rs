//! raftbed's snapshot file, what etcd's Maintenance.Snapshot streams and `etcdctl snapshot
//! save` writes: `RAFTBEDSNAP1`, the state machine's length (8 bytes, big-endian), the state
//! machine as a node's Raft snapshots hold it, zeros up to a multiple of 512 bytes, then the
//! SHA-256 of everything before it. The padding and the trailing digest are etcd's own frame
//! (etcdctl refuses a snapshot whose size is not a multiple of 512 plus 32); what is inside is
//! raftbed's, not a bbolt file, so `etcdctl snapshot status` and `restore` cannot read it and
//! `raftbed node --restore` can.

use sha2::{Digest, Sha256};

use crate::kv::KvStore;

const MAGIC: &[u8; 12] = b"RAFTBEDSNAP1";
const SECTOR: usize = 512;
const DIGEST: usize = 32;

/// The snapshot file of a state machine encoded as `state`.
pub fn encode(state: &[u8]) -> Vec<u8> {
    let mut file = Vec::with_capacity(state.len() + SECTOR + DIGEST);
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&(state.len() as u64).to_be_bytes());
    file.extend_from_slice(state);
    file.resize(file.len().div_ceil(SECTOR) * SECTOR, 0);
    let digest = Sha256::digest(&file);
    file.extend_from_slice(&digest);
    file
}

/// The state machine in a snapshot file, its digest checked.
///
/// # Errors
/// What is wrong with the file: its size, its digest, its header, its state.
pub fn decode(file: &[u8]) -> Result<KvStore, String> {
    if file.len() < SECTOR + DIGEST || file.len() % SECTOR != DIGEST {
        return Err(format!(
            "{} bytes: a snapshot is a multiple of {SECTOR} bytes and a {DIGEST}-byte digest",
            file.len()
        ));
    }
    let (body, digest) = file.split_at(file.len() - DIGEST);
    if Sha256::digest(body).as_slice() != digest {
        return Err("its SHA-256 digest does not match: the file is damaged".into());
    }
    if !body.starts_with(MAGIC) {
        return Err(
            "not a raftbed snapshot (an etcd snapshot is a bbolt file raftbed cannot read)".into(),
        );
    }
    let len = u64::from_be_bytes(body[12..20].try_into().expect("8 bytes"));
    let state = usize::try_from(len)
        .ok()
        .and_then(|len| body.get(20..20 + len))
        .ok_or_else(|| format!("its header claims {len} bytes of state, more than it holds"))?;
    KvStore::decode(state).map_err(|e| format!("its state does not decode: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_round_trips_and_damage_is_named() {
        let state = KvStore::default().encode();
        let file = encode(&state);
        assert_eq!(file.len() % SECTOR, DIGEST, "etcdctl's size rule");
        assert_eq!(decode(&file).expect("decodes").revision(), KvStore::default().revision());
        let mut flipped = file.clone();
        flipped[40] ^= 1;
        assert!(decode(&flipped).expect_err("damaged").contains("digest"));
        assert!(decode(&file[..100]).expect_err("short").contains("multiple of 512"));
        let mut foreign = vec![0u8; SECTOR];
        foreign.extend_from_slice(&Sha256::digest(&foreign));
        assert!(decode(&foreign).expect_err("foreign").contains("not a raftbed snapshot"));
    }
}
