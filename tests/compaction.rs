//! etcd's periodic auto-compaction on a real 3-node loopback cluster: the leader compacts to the
//! revision of one retention ago on its own, through the log, so every member refuses reads
//! below it with etcd's error while reads at the current revision still answer.

use std::time::{Duration, Instant};

use bytes::Bytes;
use raftbed::proto::etcdserverpb::kv_client::KvClient;
use raftbed::proto::etcdserverpb::{PutRequest, RangeRequest};
use raftbed::server::api::compactor::AutoCompaction;
use raftbed::server::local::LocalCluster;
use raftbed::transport::net::{Net, TokioNet};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_auto_compaction_drops_old_revisions_on_every_member() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().to_path_buf();
    let cluster = tokio::task::spawn_blocking(move || {
        LocalCluster::start_with(3, &path, |config| {
            config.auto_compaction = Some(AutoCompaction::Periodic(Duration::from_millis(300)));
        })
    })
    .await
    .expect("joined")
    .expect("a cluster");
    let client = |i: usize| {
        let channel = TokioNet.channel(&cluster.endpoints[i], Duration::from_secs(2), None);
        KvClient::new(channel.expect("a channel"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = 0;
    for i in 0..5 {
        let put = PutRequest {
            key: Bytes::from_static(b"k"),
            value: Bytes::from(format!("{i}")),
            ..Default::default()
        };
        loop {
            match client(0).put(put.clone()).await {
                Ok(response) => {
                    last = response.into_inner().header.expect("a header").revision;
                    break;
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("no leader within 30s: {e}"),
            }
        }
    }
    // Eleven samples a tenth of the retention apart, then a compaction to the oldest.
    let old = RangeRequest {
        key: Bytes::from_static(b"k"),
        revision: 2,
        serializable: true,
        ..Default::default()
    };
    for member in 0..3 {
        let refused = loop {
            match client(member).range(old.clone()).await {
                Err(status) => break status,
                Ok(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Ok(_) => panic!("n{}: revision 2 still readable after 30s", member + 1),
            }
        };
        assert!(refused.message().contains("required revision has been compacted"), "{refused:?}");
        let now = RangeRequest {
            key: Bytes::from_static(b"k"),
            revision: last,
            serializable: true,
            ..Default::default()
        };
        let value = client(member).range(now).await.expect("the current revision").into_inner();
        assert_eq!(value.kvs[0].value, Bytes::from_static(b"4"), "n{}", member + 1);
    }
}
