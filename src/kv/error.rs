//! The errors clients see, in one place: each has etcd's gRPC code and message (clients match
//! on them), and is either *definite* (the request did not happen and never will) or not (a
//! proposal that timed out may still commit).

use tonic::Code;

/// An error answered to a client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The gRPC status code.
    pub code: Code,
    /// etcd's message where etcd has one.
    pub message: String,
    /// The request certainly did not and will not take effect.
    pub definite: bool,
}

impl ApiError {
    /// A definite error.
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), definite: true }
    }

    /// An error after which the request may still take effect.
    pub fn indefinite(code: Code, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), definite: false }
    }

    /// A request without a key.
    pub fn empty_key() -> ApiError {
        ApiError::new(Code::InvalidArgument, "etcdserver: key is not provided")
    }

    /// `ignore_value` or `ignore_lease` on a key that does not exist.
    pub fn key_not_found() -> ApiError {
        ApiError::new(Code::InvalidArgument, "etcdserver: key not found")
    }

    /// A value given with `ignore_value`.
    pub fn value_provided() -> ApiError {
        ApiError::new(Code::InvalidArgument, "etcdserver: value is provided")
    }

    /// A lease given with `ignore_lease`.
    pub fn lease_provided() -> ApiError {
        ApiError::new(Code::InvalidArgument, "etcdserver: lease is provided")
    }

    /// A transaction branch writing one key twice.
    pub fn duplicate_key() -> ApiError {
        ApiError::new(Code::InvalidArgument, "etcdserver: duplicate key given in txn request")
    }

    /// A transaction with more operations than allowed.
    pub fn too_many_ops() -> ApiError {
        ApiError::new(Code::InvalidArgument, "etcdserver: too many operations in txn request")
    }

    /// A message larger than gRPC accepts, refused as grpc-go refuses it.
    pub fn message_too_large(size: usize, max: usize) -> ApiError {
        let message = format!("grpc: received message larger than max ({size} vs. {max})");
        ApiError::new(Code::ResourceExhausted, message)
    }

    /// A request larger than allowed.
    pub fn request_too_large() -> ApiError {
        ApiError::new(Code::InvalidArgument, "etcdserver: request is too large")
    }

    /// A lease that does not exist.
    pub fn lease_not_found() -> ApiError {
        ApiError::new(Code::NotFound, "etcdserver: requested lease not found")
    }

    /// A lease id already in use.
    pub fn lease_exists() -> ApiError {
        ApiError::new(Code::FailedPrecondition, "etcdserver: lease already exists")
    }

    /// A lease TTL beyond the maximum.
    pub fn lease_ttl_too_large() -> ApiError {
        ApiError::new(Code::OutOfRange, "etcdserver: too large lease TTL")
    }

    /// A read at a revision not reached yet.
    pub fn future_revision() -> ApiError {
        ApiError::new(Code::OutOfRange, "etcdserver: mvcc: required revision is a future revision")
    }

    /// A read at an old revision: raftbed keeps no history, so every older revision counts as
    /// compacted.
    pub fn compacted() -> ApiError {
        ApiError::new(Code::OutOfRange, "etcdserver: mvcc: required revision has been compacted")
    }

    /// No leader is known; nothing was proposed.
    pub fn no_leader() -> ApiError {
        ApiError::new(Code::Unavailable, "etcdserver: no leader")
    }

    /// This node does not lead and cannot forward; nothing was proposed.
    pub fn not_leader() -> ApiError {
        ApiError::new(Code::Unavailable, "etcdserver: not leader")
    }

    /// Proposed, but no outcome in time: it may still commit.
    pub fn timeout() -> ApiError {
        ApiError::indefinite(Code::Unavailable, "etcdserver: request timed out")
    }

    /// A read not served in time. Reads change nothing, so it is definite.
    pub fn read_timeout() -> ApiError {
        ApiError::new(Code::Unavailable, "etcdserver: request timed out")
    }

    /// The proposal's log slot went to another entry: it will never commit. For a read, the
    /// leadership it waited to confirm was lost.
    pub fn leader_changed() -> ApiError {
        ApiError::new(Code::Unavailable, "etcdserver: leader changed")
    }

    /// The node's queue is full; nothing was proposed.
    pub fn too_many_requests() -> ApiError {
        ApiError::new(Code::ResourceExhausted, "etcdserver: too many requests")
    }

    /// The node stopped while the request waited: it may have been proposed.
    pub fn stopped() -> ApiError {
        ApiError::indefinite(Code::Unavailable, "etcdserver: server stopped")
    }

    /// A retried request older than the client's newest one.
    pub fn stale_sequence(seq: u64, last: u64) -> ApiError {
        ApiError::new(
            Code::FailedPrecondition,
            format!(
                "raftbed: request {seq} is older than this client's last ({last}); not applied"
            ),
        )
    }

    /// A guarded write whose token a newer holder has superseded.
    pub fn fenced(lock: &[u8], token: i64, newest: i64) -> ApiError {
        ApiError::new(
            Code::FailedPrecondition,
            format!(
                "raftbed: fencing token {token} of lock {} is older than {newest}",
                String::from_utf8_lossy(lock)
            ),
        )
    }

    /// A guarded write with a token no holder of that lock was ever given.
    pub fn unknown_token(lock: &[u8], token: i64) -> ApiError {
        ApiError::new(
            Code::FailedPrecondition,
            format!(
                "raftbed: token {token} was never issued for lock {}",
                String::from_utf8_lossy(lock)
            ),
        )
    }

    /// A request missing a required field, or with a field out of its domain.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::InvalidArgument, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_timeouts_and_stops_are_indefinite() {
        assert!(!ApiError::timeout().definite);
        assert!(!ApiError::stopped().definite);
        for definite in [
            ApiError::not_leader(),
            ApiError::no_leader(),
            ApiError::leader_changed(),
            ApiError::lease_not_found(),
            ApiError::too_many_requests(),
        ] {
            assert!(definite.definite, "{definite}");
        }
    }
}
