//! A real cluster on loopback (in-process nodes, real sockets, real disks, the real clock)
//! driven through raftbed's client and CLI: sessions, leases that expire, locks whose fencing
//! tokens refuse a holder that paused past its lease, and garbage on the wire.

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftbed::client::Client;
use raftbed::proto::etcdserverpb::{LeaseGrantRequest, PutRequest, PutResponse};
use raftbed::server::api::{CLIENT_HEADER, SEQ_HEADER};
use raftbed::server::calls::Consistency;
use raftbed::server::local::LocalCluster;
use raftbed::transport::net::TokioNet;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

/// A client of `cluster` with session `id`.
fn client(cluster: &LocalCluster, id: u64) -> Client<TokioNet> {
    let mut client = Client::new(TokioNet, cluster.endpoints.clone(), id);
    client.timeout = Duration::from_secs(3);
    client.attempts = 5;
    client
}

/// A raw gRPC channel to `endpoint`, for requests the client would not send.
async fn connect(endpoint: &str) -> tonic::transport::Channel {
    let uri = format!("http://{endpoint}");
    tonic::transport::Endpoint::from_shared(uri).unwrap().connect().await.unwrap()
}

/// Waits until a write commits.
async fn wait_for_leader(client: &mut Client<TokioNet>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.put(Bytes::from_static(b"ready"), Bytes::from_static(b"1")).await.is_err() {
        assert!(Instant::now() < deadline, "no leader within 30s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn sessions_leases_locks_and_fencing_on_real_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(3, dir.path()).unwrap();
    runtime().block_on(async {
        let mut a = client(&cluster, 1);
        let mut b = client(&cluster, 2);
        wait_for_leader(&mut a).await;

        // Reads at every consistency see a committed write.
        a.put(Bytes::from_static(b"x"), Bytes::from_static(b"1")).await.unwrap();
        for consistency in [Consistency::Linearizable, Consistency::Lease] {
            let read = b.get(Bytes::from_static(b"x"), Bytes::new(), consistency).await.unwrap();
            assert_eq!(read.kvs[0].value, Bytes::from_static(b"1"), "{consistency:?}");
        }

        // A write retried with its session through every node applies once.
        let mut revisions = Vec::new();
        for endpoint in &cluster.endpoints {
            let channel = connect(endpoint).await;
            let mut request = tonic::Request::new(PutRequest {
                key: Bytes::from_static(b"once"),
                value: Bytes::from_static(b"v"),
                ..PutRequest::default()
            });
            request.metadata_mut().insert(CLIENT_HEADER, 77u64.into());
            request.metadata_mut().insert(SEQ_HEADER, 1u64.into());
            let response: PutResponse =
                raftbed::proto::etcdserverpb::kv_client::KvClient::new(channel)
                    .put(request)
                    .await
                    .unwrap()
                    .into_inner();
            revisions.push(response.header.unwrap().revision);
        }
        assert!(
            revisions.iter().all(|r| *r == revisions[0]),
            "one apply, one answer: {revisions:?}"
        );
        let read = a
            .get(Bytes::from_static(b"once"), Bytes::new(), Consistency::Linearizable)
            .await
            .unwrap();
        assert_eq!(read.kvs[0].version, 1, "applied once");

        // A lease that is not kept alive expires, and its keys go with it.
        let lease = a.lease_grant(1).await.unwrap();
        a.put_with_lease(Bytes::from_static(b"ephemeral"), Bytes::from_static(b"v"), lease.id)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let read = a
                .get(Bytes::from_static(b"ephemeral"), Bytes::new(), Consistency::Linearizable)
                .await
                .unwrap();
            if read.kvs.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "the lease did not expire");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(a.keep_alive_once(lease.id).await.unwrap(), 0, "an expired lease renews to 0");

        // Fencing: a holds the lock, then pauses past its lease; b takes over; a wakes and
        // writes with its old token, and is refused.
        let lease_a = a.lease_grant(1).await.unwrap();
        let held_a = a.lock(Bytes::from_static(b"L"), lease_a.id).await.unwrap();
        a.guarded_put(
            Bytes::from_static(b"L"),
            held_a.token,
            Bytes::from_static(b"data"),
            Bytes::from_static(b"a"),
        )
        .await
        .unwrap();
        let lease_b = b.lease_grant(10).await.unwrap();
        b.timeout = Duration::from_secs(20);
        // a sends no keep-alive: its lease lapses within about a second and b gets the lock.
        let held_b = b.lock(Bytes::from_static(b"L"), lease_b.id).await.unwrap();
        assert!(held_b.token > held_a.token, "tokens increase");
        b.guarded_put(
            Bytes::from_static(b"L"),
            held_b.token,
            Bytes::from_static(b"data"),
            Bytes::from_static(b"b"),
        )
        .await
        .unwrap();
        let stale = a
            .guarded_put(
                Bytes::from_static(b"L"),
                held_a.token,
                Bytes::from_static(b"data"),
                Bytes::from_static(b"a again"),
            )
            .await
            .unwrap_err();
        assert_eq!(stale.code, tonic::Code::FailedPrecondition);
        assert!(stale.message.contains("is older than") && stale.definite, "{stale:?}");
        let data = a
            .get(Bytes::from_static(b"data"), Bytes::new(), Consistency::Linearizable)
            .await
            .unwrap();
        assert_eq!(
            data.kvs[0].value,
            Bytes::from_static(b"b"),
            "the stale holder's write never landed"
        );
    });
}

#[test]
fn garbage_requests_get_errors_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(1, dir.path()).unwrap();
    runtime().block_on(async {
        let mut a = client(&cluster, 1);
        wait_for_leader(&mut a).await;
        let channel = connect(&cluster.endpoints[0]).await;
        // A LeaseGrantRequest's bytes sent as a Put: field 1 is a varint, not the key's bytes.
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let codec = tonic_prost::ProstCodec::<LeaseGrantRequest, PutResponse>::default();
        let path = http::uri::PathAndQuery::from_static("/etcdserverpb.KV/Put");
        let garbage = tonic::Request::new(LeaseGrantRequest { ttl: 5, id: 9 });
        let error = grpc.unary(garbage, path, codec).await.unwrap_err();
        assert_ne!(error.code(), tonic::Code::Ok);
        // An empty key and an unknown session value are refused by name.
        let error = a.put(Bytes::new(), Bytes::from_static(b"v")).await.unwrap_err();
        assert!(error.message.contains("key is not provided") && error.definite, "{error:?}");
        let mut request =
            tonic::Request::new(PutRequest { key: Bytes::from_static(b"k"), ..Default::default() });
        request.metadata_mut().insert(SEQ_HEADER, "not-a-number".parse().unwrap());
        let error = raftbed::proto::etcdserverpb::kv_client::KvClient::new(channel)
            .put(request)
            .await
            .unwrap_err();
        assert!(error.message().contains("x-raftbed-seq"), "{error:?}");
        // Membership requests without sense get etcd's refusals, and change nothing.
        for urls in [vec![], vec!["not-a-peer-url".to_string()]] {
            let error = a.member_add(urls, false).await.unwrap_err();
            assert_eq!(error.code, tonic::Code::InvalidArgument, "{error:?}");
            assert_eq!(error.message, "etcdserver: given member URLs are invalid");
        }
        for id in [0, 7] {
            let error = a.member_remove(id).await.unwrap_err();
            assert_eq!(error.message, "etcdserver: member not found", "{error:?}");
        }
        let error = a.member_promote(1).await.unwrap_err();
        assert_eq!(error.message, "etcdserver: can only promote a learner member");
        // The last voter cannot go (etcd's strict check refuses it too).
        let error = a.member_remove(1).await.unwrap_err();
        assert!(error.message.contains("not enough started members"), "{error:?}");
        assert_eq!(a.member_list().await.unwrap().members.len(), 1);
        // Still serving.
        a.put(Bytes::from_static(b"k"), Bytes::from_static(b"v")).await.unwrap();
    });
}

#[test]
fn the_kv_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(3, dir.path()).unwrap();
    runtime().block_on(async { wait_for_leader(&mut client(&cluster, 1)).await });
    let endpoints = cluster.endpoints.join(",");
    let kv = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_raftbed"))
            .args(["kv", "--endpoints", &endpoints])
            .args(args)
            .output()
            .expect("runs");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).trim_end().to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    assert_eq!(kv(&["put", "app/a", "1"]).1, "OK");
    assert_eq!(kv(&["put", "app/b", "2"]).1, "OK");
    assert_eq!(kv(&["get", "app/a"]).1, "app/a\n1");
    for consistency in ["l", "lease", "s"] {
        assert_eq!(
            kv(&["get", "app/", "--prefix", "--consistency", consistency]).1,
            "app/a\n1\napp/b\n2"
        );
    }
    assert_eq!(kv(&["cas", "app/a", "1", "10"]), (Some(0), "OK".into(), String::new()));
    let (code, out, _) = kv(&["cas", "app/a", "1", "11"]);
    assert_eq!((code, out.as_str()), (Some(1), "FAILED: app/a is \"10\""));
    assert_eq!(kv(&["cas", "app/c", "--absent", "3"]).1, "OK");
    assert_eq!(kv(&["del", "app/", "--prefix"]).1, "3");
    let (code, out, _) =
        kv(&["lock", "job", "--ttl", "5", "--", "sh", "-c", "echo token=$RAFTBED_LOCK_TOKEN"]);
    assert_eq!(code, Some(0), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("job/") && lines[0].contains(" token="), "{out}");
    let token = lines[0].rsplit('=').next().unwrap();
    assert_eq!(lines[1], format!("token={token}"), "the command saw the token");
    let (code, _, err) = Command::new(env!("CARGO_BIN_EXE_raftbed"))
        .args(["kv", "--endpoints", "127.0.0.1:1", "--timeout", "300ms", "get", "x"])
        .output()
        .map(|o| (o.status.code(), (), String::from_utf8_lossy(&o.stderr).to_string()))
        .unwrap();
    assert_eq!(code, Some(2));
    assert!(err.starts_with("error: ") && err.contains("127.0.0.1:1"), "{err}");
}

#[test]
fn requests_past_etcds_size_limits_are_refused_as_etcd_refuses_them() {
    // etcd's two layers: up to --max-request-bytes (1.5 MiB) a put is accepted; above it the
    // server refuses it (InvalidArgument, `etcdserver: request is too large`), on a follower
    // too; above that plus gRPC's 512 KiB, gRPC itself refuses the message (ResourceExhausted).
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(3, dir.path()).unwrap();
    runtime().block_on(async {
        let mut a = client(&cluster, 1);
        wait_for_leader(&mut a).await;
        let value = |bytes: usize| Bytes::from(vec![b'v'; bytes]);
        a.put(Bytes::from_static(b"big"), value(1400 * 1024)).await.unwrap();
        for endpoint in &cluster.endpoints {
            let channel = connect(endpoint).await;
            let mut kv = raftbed::proto::etcdserverpb::kv_client::KvClient::new(channel);
            let put = |bytes: usize| PutRequest {
                key: Bytes::from_static(b"big"),
                value: value(bytes),
                ..Default::default()
            };
            let error = kv.put(put(1600 * 1024)).await.unwrap_err();
            assert_eq!(error.code(), tonic::Code::InvalidArgument, "{endpoint}: {error:?}");
            assert_eq!(error.message(), "etcdserver: request is too large", "{endpoint}");
            let error = kv.put(put(2100 * 1024)).await.unwrap_err();
            assert_eq!(error.code(), tonic::Code::ResourceExhausted, "{endpoint}: {error:?}");
        }
        // The accepted value reads back whole, and the node still serves.
        let read = a.get(Bytes::from_static(b"big"), Bytes::new(), Consistency::Linearizable);
        assert_eq!(read.await.unwrap().kvs[0].value.len(), 1400 * 1024);
    });
}
