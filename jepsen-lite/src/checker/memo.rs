//! The visited configurations of one search, stored so that an entry's size does not grow
//! with the partition's operation count.
//!
//! The completed operations linearized are always every operation before the first one that
//! is not (in invocation order), plus a few after it: those invoked before the first pending
//! return, at most the concurrency of the history. So a configuration is kept as (state,
//! that first open position, the sorted frontier beyond it), found through the incremental
//! Zobrist hash of the whole set. Each key keeps a chain of the sets of indeterminate
//! operations seen with it, as sorted lists, for the dominance test (search.rs, 7). On a key
//! of 100,000 operations from 4 processes an entry is about 40 bytes, where a bitset of the
//! whole set would be 12.5 KB.

use hashbrown::HashTable;

const NONE: u32 = u32::MAX;

/// One (state, completed set) key.
#[derive(Clone, Copy)]
struct Key {
    hash: u64,
    state: u32,
    first_open: u32,
    /// The frontier is `words[at..at + len]`.
    at: u32,
    len: u32,
    /// The first node of its chain of indeterminate sets.
    head: u32,
}

/// One indeterminate set seen with a key.
#[derive(Clone, Copy)]
struct Chain {
    at: u32,
    len: u32,
    next: u32,
}

/// The visited configurations.
#[derive(Default)]
pub(super) struct Memo {
    table: HashTable<u32>,
    keys: Vec<Key>,
    words: Vec<u32>,
    chains: Vec<Chain>,
    extras: Vec<u32>,
}

impl Memo {
    /// The bytes it holds.
    pub(super) fn bytes(&self) -> usize {
        self.keys.capacity() * std::mem::size_of::<Key>()
            + self.chains.capacity() * std::mem::size_of::<Chain>()
            + (self.words.capacity() + self.extras.capacity()) * 4
            + self.table.capacity() * 5
    }

    /// Records a configuration: `hash` is the completed set's hash, `first_open` its first
    /// missing position, `frontier` its members beyond that (sorted), `extra` the
    /// indeterminate operations linearized (sorted). Returns false if it, or one dominating it
    /// (the same key with a subset of `extra`), was recorded before.
    pub(super) fn insert(
        &mut self,
        hash: u64,
        state: u32,
        first_open: u32,
        frontier: &[u32],
        extra: &[u32],
    ) -> bool {
        let hash = hash ^ super::search::mix(u64::from(state));
        let Memo { table, keys, words, chains, extras } = self;
        let found = table.find(hash, |&k| {
            let key = &keys[k as usize];
            key.state == state
                && key.first_open == first_open
                && words[key.at as usize..(key.at + key.len) as usize] == *frontier
        });
        let node = chains.len() as u32;
        let head = match found {
            None => {
                let k = keys.len() as u32;
                keys.push(Key {
                    hash,
                    state,
                    first_open,
                    at: words.len() as u32,
                    len: frontier.len() as u32,
                    head: node,
                });
                words.extend_from_slice(frontier);
                table.insert_unique(hash, k, |&k| keys[k as usize].hash);
                NONE
            }
            Some(&k) => {
                let key = &mut keys[k as usize];
                let mut cursor = key.head;
                while cursor != NONE {
                    let seen = chains[cursor as usize];
                    if is_subset(&extras[seen.at as usize..(seen.at + seen.len) as usize], extra) {
                        return false;
                    }
                    cursor = seen.next;
                }
                std::mem::replace(&mut key.head, node)
            }
        };
        chains.push(Chain { at: extras.len() as u32, len: extra.len() as u32, next: head });
        extras.extend_from_slice(extra);
        true
    }
}

/// Whether sorted `a` is a subset of sorted `b`.
fn is_subset(a: &[u32], b: &[u32]) -> bool {
    let mut b = b.iter();
    a.iter().all(|x| b.by_ref().any(|y| y == x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_is_seen_once_and_dominated_by_fewer_indeterminate_ops() {
        let mut memo = Memo::default();
        assert!(memo.insert(7, 1, 3, &[5, 9], &[2]));
        assert!(!memo.insert(7, 1, 3, &[5, 9], &[2]), "the same configuration");
        assert!(!memo.insert(7, 1, 3, &[5, 9], &[1, 2]), "dominated by {{2}}");
        assert!(memo.insert(7, 1, 3, &[5, 9], &[1]), "not a superset of {{2}}");
        assert!(memo.insert(7, 2, 3, &[5, 9], &[2]), "another state");
        assert!(memo.insert(7, 1, 3, &[5, 10], &[2]), "another frontier (a hash collision)");
        assert!(memo.insert(7, 1, 4, &[5, 9], &[2]), "another first open position");
        assert!(
            is_subset(&[], &[1]) && is_subset(&[1, 3], &[1, 2, 3]) && !is_subset(&[4], &[1, 3])
        );
    }
}
