//! jepsen-lite: histories, models and a linearizability checker. Knows nothing about Raft.
