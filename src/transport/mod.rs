//! Peer messages on the wire: the generated protobuf types and their conversion to the core's
//! domain types. The core never imports `pb`.

pub mod convert;

/// Types generated from `proto/raft.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("raft");
}
