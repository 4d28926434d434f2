//! `raftbed bench --workload watch`: watchers on a prefix, spread over every member, and one
//! writer putting to the leader; how many events a second reach the watchers, and how long
//! from a put's start until a watcher has its event. Speaks only etcd's v3 API, so it measures
//! raftbed and etcd alike.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;

use super::bench::{BenchArgs, leader_index, now_ns, pct};
use crate::client::Client;
use crate::proto::etcdserverpb::watch_client::WatchClient;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::{WatchCreateRequest, WatchRequest};
use crate::transport::net::{Net, TokioNet};

const PREFIX: &[u8] = b"bench-watch/";

/// Opens one watch on the prefix through `channel`; answers a task that counts `expect` events
/// and their delivery latencies (the put's start time is in the value).
async fn watcher(
    channel: crate::transport::channel::RpcChannel,
    expect: u64,
    within: Duration,
) -> Result<tokio::task::JoinHandle<Vec<Duration>>, String> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let create = WatchCreateRequest {
        key: Bytes::from_static(PREFIX),
        range_end: crate::kv::prefix_end(PREFIX).unwrap_or_default(),
        ..WatchCreateRequest::default()
    };
    let _ =
        tx.send(WatchRequest { request_union: Some(RequestUnion::CreateRequest(create)) }).await;
    let mut stream = WatchClient::new(channel)
        .watch(Request::new(ReceiverStream::new(rx)))
        .await
        .map_err(|e| format!("watch: {}", e.message()))?
        .into_inner();
    match stream.message().await {
        Ok(Some(created)) if created.created && !created.canceled => {}
        other => return Err(format!("watch not created: {other:?}")),
    }
    Ok(tokio::spawn(async move {
        let _keep_open = tx;
        let mut latencies = Vec::with_capacity(expect as usize);
        let deadline = tokio::time::Instant::now() + within;
        while (latencies.len() as u64) < expect {
            let Ok(Ok(Some(response))) = tokio::time::timeout_at(deadline, stream.message()).await
            else {
                break;
            };
            let now = now_ns();
            for event in response.events {
                let value = event.kv.map(|kv| kv.value).unwrap_or_default();
                let sent = std::str::from_utf8(&value[..value.len().min(19)])
                    .ok()
                    .and_then(|t| t.trim().parse::<i64>().ok())
                    .unwrap_or(now);
                latencies.push(Duration::from_nanos((now - sent).max(0) as u64));
            }
        }
        latencies
    }))
}

/// Runs the watch workload: `args.watchers` watchers, `args.ops` puts from one writer.
pub async fn run(args: &BenchArgs, endpoints: Vec<String>) -> Result<String, String> {
    let leader = leader_index(&endpoints).await.ok_or("no leader found")?;
    let timeout = args.op_timeout.unwrap_or(Duration::from_secs(5));
    let within = Duration::from_secs(120);
    let mut channels = Vec::new();
    for i in 0..args.conns {
        let addr = &endpoints[i % endpoints.len()];
        channels.push(TokioNet.channel(addr, timeout, None).map_err(|e| format!("{addr}: {e}"))?);
    }
    let mut tasks = Vec::new();
    for w in 0..args.watchers {
        tasks.push(watcher(channels[w % channels.len()].clone(), args.ops, within).await?);
    }
    let mut writer = Client::new(TokioNet, endpoints.clone(), 0);
    writer.timeout = timeout;
    writer.prefer(leader);
    let errors = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    for i in 0..args.ops {
        let key = [PREFIX, format!("{:08}", i % args.key_space.max(1)).as_bytes()].concat();
        let mut value = format!("{:<19}", now_ns()).into_bytes();
        value.resize(args.value_size.max(19), b'v');
        if writer.put(Bytes::from(key), Bytes::from(value)).await.is_err() {
            *errors.lock().expect("not poisoned") += 1;
        }
    }
    let written = start.elapsed().as_secs_f64();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.map_err(|e| e.to_string())?);
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let expected = args.ops * args.watchers as u64;
    Ok(format!(
        "RESULT name={} tool=raftbed-bench mode=watch watchers={} conns={} puts={} put_err={} events={} missing={} secs={secs:.3} puts_s={:.1} events_s={:.1} p50_ms={:.3} p99_ms={:.3} max_ms={:.3}",
        args.name,
        args.watchers,
        args.conns,
        args.ops,
        errors.lock().expect("not poisoned"),
        all.len(),
        expected.saturating_sub(all.len() as u64),
        args.ops as f64 / written,
        all.len() as f64 / secs,
        pct(&all, 50.0),
        pct(&all, 99.0),
        pct(&all, 100.0),
    ))
}
