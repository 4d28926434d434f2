//! Types generated from `proto/`: one module per protobuf package, side by side, as prost's
//! cross-package paths (`super::etcdserverpb::...`) expect.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// `proto/etcd/mvccpb/kv.proto`: etcd's key-value pair.
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// `proto/etcd/etcdserverpb/rpc.proto`: the etcd v3 API subset raftbed serves.
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// `proto/raftbed.proto`: locks with fencing tokens, and the state machine's commands.
pub mod raftbed {
    tonic::include_proto!("raftbed");
}

/// `proto/raft.proto`: the peer protocol.
pub mod raft {
    tonic::include_proto!("raft");
}
