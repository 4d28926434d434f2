#!/usr/bin/env bash
# raftbed against etcd 3.4 on this machine, in one run, with one load generator (`raftbed bench`,
# which speaks the etcd v3 API): 5 nodes on loopback each, both durable (fsync), both with
# etcd's timers (heartbeat 100 ms, election timeout 1000 ms). Workloads as ../shared/peers/
# etcd-bench.sh: puts of 256-byte values to 8-byte keys over 100,000 with 1 and 64 clients,
# linearizable and serializable gets with 64 clients (and raftbed's lease reads), 64 watchers
# over every member with one writer (events delivered per second), and the failover probe (8 writers, 250 ms per-op timeout, the leader SIGKILLed at 3 s).
#
# Usage: RUNS=3 benches/vs-etcd.sh [ETCD_CLUSTER_SCRIPT]   (default ../shared/peers/etcd-cluster.sh)
# Needs Debian's etcd-server for the etcd side. Each run starts both clusters afresh, raftbed
# first, then etcd; prints RESULT lines, then a table of medians over the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
unset RUSTFLAGS
ETCD_SCRIPT=$(realpath -m "${1:-../shared/peers/etcd-cluster.sh}")
cargo build --release -q
RB=target/release/raftbed
RUNS="${RUNS:-1}"
WORK=$(mktemp -d /tmp/raftbed-vs-etcd.XXXXXX)
RESULTS="$WORK/results.txt"
: >"$RESULTS"
TIMERS=(--heartbeat 100ms --election-timeout 1000ms)

bench() { # name endpoints args...
  local name=$1 endpoints=$2; shift 2
  timeout 300 "$RB" bench --endpoints "$endpoints" --name "$name" "$@" | tee -a "$RESULTS"
}

workloads() { # system endpoints kill-cmd
  local sys=$1 eps=$2 kill=$3
  bench "$sys-put-1" "$eps" --workload put --clients 1 --conns 1 --ops 2000
  bench "$sys-put-64" "$eps" --workload put --clients 64 --conns 8 --ops 20000
  bench "$sys-get-l-64" "$eps" --workload get-l --clients 64 --conns 8 --ops 40000
  if [[ $sys == raftbed ]]; then
    bench "$sys-get-lease-64" "$eps" --workload get-lease --clients 64 --conns 8 --ops 40000
  fi
  bench "$sys-get-s-64" "$eps" --workload get-s --clients 64 --conns 8 --ops 40000
  bench "$sys-watch-64" "$eps" --workload watch --watchers 64 --conns 8 --ops 2000
  bench "$sys-failover" "$eps" --workload failover --clients 8 --op-timeout 250ms --kill-cmd "$kill"
}

for run in $(seq 1 "$RUNS"); do
  # raftbed
  RBDIR="$WORK/raftbed"
  "$RB" cluster up --data-dir "$RBDIR" --base-port 25000 --detach "${TIMERS[@]}" >/dev/null
  trap '"$RB" cluster down --data-dir "$RBDIR" >/dev/null 2>&1 || true' EXIT
  RBEPS=$(python3 -c "import json,sys; print(','.join(json.load(open(sys.argv[1]))['endpoints']))" "$RBDIR/cluster.json")
  workloads raftbed "$RBEPS" "$PWD/$RB cluster kill-leader --data-dir $RBDIR"
  "$RB" cluster down --data-dir "$RBDIR" >/dev/null

  # etcd
  if command -v etcd >/dev/null 2>&1 && [[ -x "$ETCD_SCRIPT" || -f "$ETCD_SCRIPT" ]]; then
    export ETCD_CLUSTER_DIR="$WORK/etcd" ETCD_BASE_PORT=26000
    export ETCD_EXTRA_ARGS="--heartbeat-interval=100 --election-timeout=1000"
    bash "$ETCD_SCRIPT" start 5 >/dev/null
    trap 'bash "$ETCD_SCRIPT" stop --purge >/dev/null 2>&1 || true; "$RB" cluster down --data-dir "$RBDIR" >/dev/null 2>&1 || true' EXIT
    ETCDEPS=$(bash "$ETCD_SCRIPT" endpoints | sed 's#http://##g')
    workloads etcd "$ETCDEPS" "bash $ETCD_SCRIPT kill-leader"
    bash "$ETCD_SCRIPT" stop --purge >/dev/null
  else
    echo "etcd or $ETCD_SCRIPT missing: raftbed side only" >&2
  fi
  rm -rf "$RBDIR"
done

python3 - "$RESULTS" <<'PY'
import sys, re
import statistics
runs = {}
for line in open(sys.argv[1]):
    if not line.startswith("RESULT"):
        continue
    fields = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
    runs.setdefault(fields["name"], []).append(fields)
# Per workload, the median of each number over the runs.
rows = {}
for name, results in runs.items():
    rows[name] = {key: statistics.median(float(r[key]) for r in results)
                  for key in results[0] if key not in ("name", "tool", "mode", "killed_node")
                  and all(key in r for r in results)}
print(f"\nmedians over {max(len(v) for v in runs.values())} run(s)")
def get(name, key, fmt="{:.0f}"):
    r = rows.get(name)
    return fmt.format(float(r[key])) if r and key in r else "-"
print()
print(f"{'workload':<28}{'raftbed ops/s':>14}{'p99 ms':>9}{'etcd ops/s':>12}{'p99 ms':>9}{'ratio':>8}")
for label, rb, et in [
    ("put, 1 client", "raftbed-put-1", "etcd-put-1"),
    ("put, 64 clients", "raftbed-put-64", "etcd-put-64"),
    ("lease read vs etcd l-read", "raftbed-get-lease-64", "etcd-get-l-64"),
    ("ReadIndex vs etcd l-read", "raftbed-get-l-64", "etcd-get-l-64"),
    ("serializable, 64 clients", "raftbed-get-s-64", "etcd-get-s-64"),
]:
    a, b = rows.get(rb), rows.get(et)
    ratio = f"{float(a['ops_s'])/float(b['ops_s']):.2f}x" if a and b else "-"
    print(f"{label:<28}{get(rb,'ops_s'):>14}{get(rb,'p99_ms','{:.2f}'):>9}{get(et,'ops_s'):>12}{get(et,'p99_ms','{:.2f}'):>9}{ratio:>8}")
a, b = rows.get("raftbed-watch-64"), rows.get("etcd-watch-64")
ratio = f"{float(a['events_s'])/float(b['events_s']):.2f}x" if a and b else "-"
print(f"{'watch events/s, 64 watchers':<28}{get('raftbed-watch-64','events_s'):>14}{get('raftbed-watch-64','p99_ms','{:.2f}'):>9}{get('etcd-watch-64','events_s'):>12}{get('etcd-watch-64','p99_ms','{:.2f}'):>9}{ratio:>8}")
print(f"{'failover: longest write gap':<28}{get('raftbed-failover','max_write_gap_ms'):>12} ms{'':>9}{get('etcd-failover','max_write_gap_ms'):>10} ms")
PY
