//! `raftbed kv`: put, get, del, cas and lock against a running cluster, through the same etcd
//! v3 API etcdctl uses. Writes carry a session, so a write retried through another node after a
//! timeout applies at most once.
//!
//! Exit codes: 0 done; 1 a compare-and-set found another value (nothing written); 2 an error
//! (the message says whether the request surely did not happen, or may have).

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Subcommand};

use crate::client::{Client, ClientError};
use crate::kv::prefix_end;
use crate::proto::etcdserverpb::response_op::Response as OpResponse;
use crate::server::calls::Consistency;
use crate::server::local::{DEFAULT_BASE_PORT, default_endpoints};
use crate::transport::net::TokioNet;

/// Arguments of `raftbed kv`.
#[derive(Debug, Args)]
pub struct KvArgs {
    /// Client endpoints, comma-separated (default: the local 5-node cluster of `raftbed
    /// cluster up`, 127.0.0.1:24010 to :24050).
    #[arg(long, global = true, value_delimiter = ',')]
    endpoints: Vec<String>,
    /// Give up on one attempt after this long: 500ms, 5s.
    #[arg(long, global = true, default_value = "5s", value_parser = super::sim::parse_duration)]
    timeout: Duration,
    #[command(subcommand)]
    command: KvCommand,
}

#[derive(Debug, Subcommand)]
enum KvCommand {
    /// Write KEY = VALUE.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Read KEY (or every key starting with it).
    Get {
        /// The key, or the prefix with --prefix.
        key: String,
        /// Read every key with this prefix.
        #[arg(long)]
        prefix: bool,
        /// l (linearizable, by ReadIndex), lease (the leader's lease, else ReadIndex), or s
        /// (serializable: this node's state, possibly stale).
        #[arg(long, default_value = "l", value_parser = ["l", "linearizable", "lease", "s", "serializable"])]
        consistency: String,
    },
    /// Delete KEY (or every key starting with it); prints how many were deleted.
    Del {
        /// The key, or the prefix with --prefix.
        key: String,
        /// Delete every key with this prefix.
        #[arg(long)]
        prefix: bool,
    },
    /// Compare-and-set: KEY becomes NEW if it holds OLD (with --absent: if it does not exist).
    Cas {
        /// The key.
        key: String,
        /// The value expected (omit with --absent).
        #[arg(required_unless_present = "absent")]
        old: Option<String>,
        /// The value to set.
        new: Option<String>,
        /// Expect the key not to exist.
        #[arg(long)]
        absent: bool,
    },
    /// Take lock NAME and print its fencing token; run COMMAND while holding it (with the
    /// token in RAFTBED_LOCK_TOKEN), or hold it until Ctrl-C. Then release it.
    Lock {
        /// The lock's name.
        name: String,
        /// The lease's time-to-live in seconds: the lock is lost if this process stops
        /// renewing it for that long.
        #[arg(long, default_value_t = 10)]
        ttl: i64,
        /// A command to run while holding the lock.
        #[arg(last = true)]
        command: Vec<String>,
    },
}

/// Runs `raftbed kv`.
pub fn run(args: &KvArgs) -> ExitCode {
    let endpoints = if args.endpoints.is_empty() {
        default_endpoints(5, DEFAULT_BASE_PORT)
    } else {
        args.endpoints.clone()
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let Ok(runtime) = runtime else {
        eprintln!("error: cannot start the async runtime");
        return ExitCode::from(2);
    };
    let mut client = Client::new(TokioNet, endpoints.clone(), session_id());
    client.timeout = args.timeout;
    client.attempts = endpoints.len().clamp(2, 5);
    match runtime.block_on(execute(&mut client, &args.command)) {
        Ok(code) => code,
        Err(error) => {
            let certainty = if error.definite {
                "it did not happen"
            } else {
                "it may or may not have happened"
            };
            eprintln!("error: {} ({certainty}; tried {})", error.message, endpoints.join(","));
            ExitCode::from(2)
        }
    }
}

/// A session id unlikely to collide with another client's.
fn session_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut rng = crate::rng::SplitMix64::new(nanos ^ (u64::from(std::process::id()) << 32));
    rng.next_u64().max(1)
}

fn range_end(key: &str, prefix: bool) -> Bytes {
    match (prefix, prefix_end(key.as_bytes())) {
        (false, _) => Bytes::new(),
        (true, Some(end)) => end,
        (true, None) => Bytes::from_static(b"\0"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn execute(
    client: &mut Client<TokioNet>,
    command: &KvCommand,
) -> Result<ExitCode, ClientError> {
    match command {
        KvCommand::Put { key, value } => {
            client.put(Bytes::from(key.clone()), Bytes::from(value.clone())).await?;
            println!("OK");
        }
        KvCommand::Get { key, prefix, consistency } => {
            let consistency = Consistency::parse(consistency).expect("clap checked it");
            let response =
                client.get(Bytes::from(key.clone()), range_end(key, *prefix), consistency).await?;
            for kv in response.kvs {
                println!("{}\n{}", text(&kv.key), text(&kv.value));
            }
        }
        KvCommand::Del { key, prefix } => {
            let answer = client.delete(Bytes::from(key.clone()), range_end(key, *prefix)).await?;
            println!("{}", answer.response.deleted);
        }
        KvCommand::Cas { key, old, new, absent } => {
            let (from, to) = match (absent, old, new) {
                (true, Some(to), None) => (None, to.clone()),
                (false, Some(from), Some(to)) => (Some(Bytes::from(from.clone())), to.clone()),
                _ => {
                    return Err(ClientError {
                        code: tonic::Code::InvalidArgument,
                        message: "usage: raftbed kv cas KEY OLD NEW, or KEY --absent NEW".into(),
                        definite: true,
                    });
                }
            };
            let answer = client.cas(Bytes::from(key.clone()), from, Bytes::from(to)).await?;
            if answer.response.succeeded {
                println!("OK");
            } else {
                let current = answer.response.responses.first().and_then(|r| match &r.response {
                    Some(OpResponse::ResponseRange(range)) => {
                        Some(range.kvs.first().map(|kv| text(&kv.value)))
                    }
                    _ => None,
                });
                match current.flatten() {
                    Some(value) => println!("FAILED: {key} is {value:?}"),
                    None => println!("FAILED: {key} does not exist"),
                }
                return Ok(ExitCode::FAILURE);
            }
        }
        KvCommand::Lock { name, ttl, command } => return lock(client, name, *ttl, command).await,
    }
    Ok(ExitCode::SUCCESS)
}

async fn lock(
    client: &mut Client<TokioNet>,
    name: &str,
    ttl: i64,
    command: &[String],
) -> Result<ExitCode, ClientError> {
    let lease = client.lease_grant(ttl).await?;
    let timeout = client.timeout;
    // Waiting for the lock lasts as long as its holder keeps it.
    client.timeout = Duration::from_secs(24 * 3600);
    let held = client.lock(Bytes::from(name.to_string()), lease.id).await;
    client.timeout = timeout;
    let held = match held {
        Ok(held) => held,
        Err(error) => {
            let _ = client.lease_revoke(lease.id).await;
            return Err(error);
        }
    };
    println!("{} token={}", text(&held.key), held.token);
    let renew_every = Duration::from_secs((lease.ttl as u64 / 3).max(1));
    let mut renew = tokio::time::interval(renew_every);
    renew.tick().await;
    let mut code = ExitCode::SUCCESS;
    if command.is_empty() {
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = renew.tick() => {
                    if client.keep_alive_once(lease.id).await.unwrap_or(0) <= 0 {
                        eprintln!("error: lost the lock's lease");
                        return Ok(ExitCode::from(2));
                    }
                }
            }
        }
    } else {
        let mut child = match tokio::process::Command::new(&command[0])
            .args(&command[1..])
            .env("RAFTBED_LOCK_TOKEN", held.token.to_string())
            .env("RAFTBED_LOCK_KEY", text(&held.key))
            .spawn()
        {
            Ok(child) => child,
            Err(error) => {
                eprintln!("error: cannot run {}: {error}", command[0]);
                code = ExitCode::from(2);
                let _ = client.unlock(held.key.clone()).await;
                let _ = client.lease_revoke(lease.id).await;
                return Ok(code);
            }
        };
        loop {
            tokio::select! {
                status = child.wait() => {
                    if !status.is_ok_and(|s| s.success()) {
                        code = ExitCode::FAILURE;
                    }
                    break;
                }
                _ = renew.tick() => {
                    if client.keep_alive_once(lease.id).await.unwrap_or(0) <= 0 {
                        eprintln!("error: lost the lock's lease while the command ran");
                        code = ExitCode::from(2);
                    }
                }
            }
        }
    }
    client.unlock(held.key.clone()).await?;
    client.lease_revoke(lease.id).await?;
    Ok(code)
}
