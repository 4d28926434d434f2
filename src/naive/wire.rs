//! The naive system's own wire messages (monitor commands, binlog replication), as prost
//! messages in length-prefixed frames.

use bytes::Bytes;

/// One message on a naive node's control port.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Msg {
    /// What it says.
    #[prost(oneof = "msg::Body", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10")]
    pub body: Option<msg::Body>,
}

/// The kinds of `Msg`.
pub mod msg {
    use bytes::Bytes;

    /// A `Msg`'s body.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Body {
        /// Monitor: are you there, and what are you?
        #[prost(message, tag = "1")]
        Ping(super::Empty),
        /// Node: what it is.
        #[prost(message, tag = "2")]
        Pong(Pong),
        /// Monitor: become primary.
        #[prost(message, tag = "3")]
        Promote(Epoch),
        /// Monitor: follow this primary.
        #[prost(message, tag = "4")]
        Follow(Follow),
        /// Node: done.
        #[prost(message, tag = "5")]
        Done(super::Empty),
        /// Replica: send me your binlog.
        #[prost(message, tag = "6")]
        Subscribe(Subscribe),
        /// Primary: the whole state.
        #[prost(message, tag = "7")]
        Snapshot(Snapshot),
        /// Primary: one write.
        #[prost(message, tag = "8")]
        Entry(Entry),
        /// Replica: stored up to here.
        #[prost(message, tag = "9")]
        Ack(Ack),
        /// Replica (fenced): your epoch is stale, I know this one.
        #[prost(message, tag = "10")]
        Refused(Epoch),
    }

    /// A node's answer to a ping.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Pong {
        /// Its epoch.
        #[prost(uint64, tag = "1")]
        pub epoch: u64,
        /// Whether it is primary.
        #[prost(bool, tag = "2")]
        pub primary: bool,
        /// The primary it follows (0: none).
        #[prost(uint64, tag = "3")]
        pub following: u64,
        /// Its binlog position.
        #[prost(uint64, tag = "4")]
        pub position: u64,
    }

    /// An epoch.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Epoch {
        /// The epoch.
        #[prost(uint64, tag = "1")]
        pub epoch: u64,
    }

    /// Follow a primary.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Follow {
        /// The primary's node id.
        #[prost(uint64, tag = "1")]
        pub primary: u64,
        /// The epoch it was promoted at.
        #[prost(uint64, tag = "2")]
        pub epoch: u64,
    }

    /// A replica's subscription.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Subscribe {
        /// The replica's node id.
        #[prost(uint64, tag = "1")]
        pub replica: u64,
        /// The epoch the replica knows.
        #[prost(uint64, tag = "2")]
        pub epoch: u64,
    }

    /// The primary's whole state.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Snapshot {
        /// The primary's epoch.
        #[prost(uint64, tag = "1")]
        pub epoch: u64,
        /// Its binlog position.
        #[prost(uint64, tag = "2")]
        pub position: u64,
        /// The encoded store.
        #[prost(bytes = "bytes", tag = "3")]
        pub kv: Bytes,
        /// The binlog's (client, seq) pairs, flattened.
        #[prost(uint64, repeated, tag = "4")]
        pub binlog: Vec<u64>,
    }

    impl Snapshot {
        /// The binlog as pairs.
        pub fn binlog_pairs(&self) -> Vec<(u64, u64)> {
            self.binlog.chunks_exact(2).map(|p| (p[0], p[1])).collect()
        }
    }

    /// One write.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Entry {
        /// The primary's epoch.
        #[prost(uint64, tag = "1")]
        pub epoch: u64,
        /// Its binlog position.
        #[prost(uint64, tag = "2")]
        pub position: u64,
        /// The encoded command.
        #[prost(bytes = "bytes", tag = "3")]
        pub data: Bytes,
        /// The client's session.
        #[prost(uint64, tag = "4")]
        pub client_id: u64,
        /// The request's sequence number.
        #[prost(uint64, tag = "5")]
        pub seq: u64,
    }

    /// Stored up to a position.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Ack {
        /// The position.
        #[prost(uint64, tag = "1")]
        pub position: u64,
    }
}

/// No fields.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

impl Msg {
    fn of(body: msg::Body) -> Msg {
        Msg { body: Some(body) }
    }
    /// A ping.
    pub fn ping() -> Msg {
        Msg::of(msg::Body::Ping(Empty {}))
    }
    /// A pong.
    pub fn pong(epoch: u64, primary: bool, following: u64, position: u64) -> Msg {
        Msg::of(msg::Body::Pong(msg::Pong { epoch, primary, following, position }))
    }
    /// A promotion.
    pub fn promote(epoch: u64) -> Msg {
        Msg::of(msg::Body::Promote(msg::Epoch { epoch }))
    }
    /// A follow order.
    pub fn follow(primary: u64, epoch: u64) -> Msg {
        Msg::of(msg::Body::Follow(msg::Follow { primary, epoch }))
    }
    /// Done.
    pub fn done() -> Msg {
        Msg::of(msg::Body::Done(Empty {}))
    }
    /// A subscription.
    pub fn subscribe(replica: u64, epoch: u64) -> Msg {
        Msg::of(msg::Body::Subscribe(msg::Subscribe { replica, epoch }))
    }
    /// A snapshot.
    pub fn snapshot(epoch: u64, position: u64, kv: Bytes, binlog: &[(u64, u64)]) -> Msg {
        let binlog = binlog.iter().flat_map(|(c, s)| [*c, *s]).collect();
        Msg::of(msg::Body::Snapshot(msg::Snapshot { epoch, position, kv, binlog }))
    }
    /// One write.
    pub fn entry(epoch: u64, position: u64, data: Bytes, client_id: u64, seq: u64) -> Msg {
        Msg::of(msg::Body::Entry(msg::Entry { epoch, position, data, client_id, seq }))
    }
    /// An ack.
    pub fn ack(position: u64) -> Msg {
        Msg::of(msg::Body::Ack(msg::Ack { position }))
    }
    /// A refusal.
    pub fn refused(epoch: u64) -> Msg {
        Msg::of(msg::Body::Refused(msg::Epoch { epoch }))
    }
}
