#!/usr/bin/env bash
# Membership changes, raftbed against etcd 3.4 on this machine in one run, interleaved: a
# 3-node cluster on loopback each (durable, etcd's timers: heartbeat 100 ms, election timeout
# 1000 ms, the same --snapshot-count), loaded with ENTRIES puts (256-byte values, 64 clients);
# then
#   catch-up: a learner is added (`etcdctl member add --learner`, the same for both; how
#             long the add itself takes is reported apart: etcd refuses adds until its leader
#             has been connected to every voter for 5 s, and etcdctl retries) and started
#             (etcd with --initial-cluster-state existing; `raftbed node --join`); the time from
#             its start until its applied index reaches the leader's index at the add;
#   removal:  the learner is promoted, and the failover probe (8 writers, 250 ms per-op
#             timeout) removes the leader at 3 s (`etcdctl member remove`): the longest gap
#             without a successful write, and the time from the removal to the first write.
#
# Usage: RUNS=3 ENTRIES=100000 SNAPSHOT_COUNT=10000 benches/membership-vs-etcd.sh
# Needs Debian's etcd-server and etcd-client. Prints RESULT lines, then medians per system.
set -euo pipefail
cd "$(dirname "$0")/.."
unset RUSTFLAGS
cargo build --release -q
RB="$PWD/target/release/raftbed"
RUNS="${RUNS:-3}"
ENTRIES="${ENTRIES:-100000}"
SNAP="${SNAPSHOT_COUNT:-10000}"
WORK=$(mktemp -d /tmp/raftbed-membership.XXXXXX)
RESULTS="$WORK/results.txt"
: >"$RESULTS"
export ETCDCTL_API=3
ETCD_PIDS=()

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

status_json() { # endpoint -> raftIndex appliedIndex
  etcdctl --endpoints="$1" endpoint status -w json 2>/dev/null \
    | python3 -c 'import json,sys; s=json.load(sys.stdin)[0]["Status"]; print(s.get("raftIndex",0), s.get("raftAppliedIndex",0))' 2>/dev/null \
    || echo "0 0"
}

leader_endpoint() { # endpoints -> the leader's endpoint and member id (hex)
  ETCDCTL_API=3 \
  etcdctl --endpoints="$1" endpoint status -w json 2>/dev/null | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    st = s["Status"]
    if st["header"]["member_id"] == st["leader"]:
        print(s["Endpoint"].replace("http://", ""), format(st["leader"], "x"))
        break'
}

catch_up() { # system leader-endpoint learner-endpoint start-time-ms add-ms
  local sys=$1 leader=$2 learner=$3 t0=$4 add_ms=$5 target applied
  target=$(status_json "$leader" | cut -d' ' -f1)
  while :; do
    read -r _ applied < <(status_json "$learner")
    if (( applied >= target )); then break; fi
    if (( $(now_ms) - t0 > 300000 )); then echo "$sys: the learner did not catch up in 300 s" >&2; break; fi
    sleep 0.05
  done
  echo "RESULT name=$sys-catch-up entries=$ENTRIES snapshot_count=$SNAP target_index=$target member_add_ms=$add_ms catch_up_ms=$(( $(now_ms) - t0 ))" | tee -a "$RESULTS"
}

# The steps both systems go through, once a 3-node cluster serves `eps`: load, add a learner
# and start it with `start_learner` (given the ETCD_INITIAL_CLUSTER line), catch up, promote,
# remove the leader under the failover probe.
membership_steps() { # system endpoints learner-client-port start-learner-function
  local sys=$1 eps=$2 port=$3 start=$4 leader added t0 add_ms id initial
  "$RB" bench --endpoints "$eps" --clients 64 --ops "$ENTRIES" --name "$sys-load" >/dev/null
  sleep 6 # etcd adds a member only after its health interval with every voter connected
  read -r leader _ < <(leader_endpoint "$eps")
  t0=$(now_ms)
  added=$(etcdctl --endpoints="$eps" member add l4 --learner --peer-urls="http://127.0.0.1:$((port + 1))")
  add_ms=$(( $(now_ms) - t0 ))
  initial=$(sed -n 's/^ETCD_INITIAL_CLUSTER="\(.*\)"$/\1/p' <<<"$added")
  t0=$(now_ms)
  "$start" "$port" "$initial"
  catch_up "$sys" "$leader" "127.0.0.1:$port" "$t0" "$add_ms"
  id=$(etcdctl --endpoints="$eps" member list | awk -F', ' -v url="http://127.0.0.1:$((port + 1))" '$4==url{print $1}')
  until etcdctl --endpoints="$eps" member promote "$id" >/dev/null 2>&1; do sleep 0.2; done
  cat >"$WORK/remove-leader.sh" <<EOS
t=\$(date +%s%N)
$(declare -f leader_endpoint)
read -r _ L < <(leader_endpoint "$eps,127.0.0.1:$port")
etcdctl --endpoints="$eps,127.0.0.1:$port" member remove "\$L" >/dev/null
echo "\$L \$t"
EOS
  sleep 6
  "$RB" bench --endpoints "$eps,127.0.0.1:$port" --workload failover --clients 8 --op-timeout 250ms \
    --kill-cmd "bash $WORK/remove-leader.sh" --name "$sys-remove-leader" | tee -a "$RESULTS"
}

LEARNER_PIDS=()
start_raftbed_learner() { # client-port initial-cluster
  "$RB" node --listen "127.0.0.1:$1" --join 127.0.0.1:25010,127.0.0.1:25020,127.0.0.1:25030 \
    --name l4 --data-dir "$WORK/raftbed-l4" --heartbeat 100ms --election-timeout 1000ms \
    --snapshot-count "$SNAP" >"$WORK/l4-raftbed-run$run.log" 2>&1 &
  LEARNER_PIDS+=($!)
}

raftbed_run() {
  local dir="$WORK/raftbed"
  rm -rf "$dir" "$WORK/raftbed-l4"
  "$RB" cluster up --nodes 3 --data-dir "$dir" --base-port 25000 --detach --heartbeat 100ms \
    --election-timeout 1000ms --snapshot-count "$SNAP" >/dev/null
  membership_steps raftbed 127.0.0.1:25010,127.0.0.1:25020,127.0.0.1:25030 25040 start_raftbed_learner
  "$RB" cluster down --data-dir "$dir" >/dev/null
  for pid in "${LEARNER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  LEARNER_PIDS=()
}

etcd_start() { # name client-port initial-cluster state data-dir
  local client="http://127.0.0.1:$2" peer="http://127.0.0.1:$(( $2 + 1 ))"
  etcd --name "$1" --data-dir "$5" --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "$3" \
    --initial-cluster-state "$4" --initial-cluster-token membership-bench \
    --snapshot-count "$SNAP" --heartbeat-interval 100 --election-timeout 1000 \
    >"$WORK/$1-run$run.log" 2>&1 &
  ETCD_PIDS+=($!)
}

etcd_stop() {
  for pid in "${ETCD_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${ETCD_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  ETCD_PIDS=()
}
trap 'etcd_stop; "$RB" cluster down --data-dir "$WORK/raftbed" >/dev/null 2>&1 || true; for pid in "${LEARNER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done' EXIT

start_etcd_learner() { # client-port initial-cluster
  etcd_start l4 "$1" "$2" existing "$WORK/etcd/l4"
}

etcd_run() {
  local dir="$WORK/etcd" initial=""
  rm -rf "$dir"; mkdir -p "$dir"
  for i in 1 2 3; do initial+="e$i=http://127.0.0.1:$(( 26001 + 10 * i )),"; done
  initial=${initial%,}
  for i in 1 2 3; do etcd_start "e$i" $(( 26000 + 10 * i )) "$initial" new "$dir/e$i"; done
  local eps=127.0.0.1:26010,127.0.0.1:26020,127.0.0.1:26030
  until [[ -n $(leader_endpoint "$eps") ]]; do sleep 0.2; done
  membership_steps etcd "$eps" 26040 start_etcd_learner
  etcd_stop
}

for run in $(seq 1 "$RUNS"); do
  echo "== run $run of $RUNS (load $(cut -d' ' -f1 /proc/loadavg))"
  raftbed_run
  etcd_run
done

python3 - "$RESULTS" <<'EOF'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name = re.search(r"name=(\S+)", line).group(1)
    for key in ("member_add_ms", "catch_up_ms", "max_write_gap_ms", "kill_to_first_ok_ms"):
        m = re.search(key + r"=([\d.]+)", line)
        if m:
            rows.setdefault((name, key), []).append(float(m.group(1)))
print("\nmedians over the runs")
for (name, key), values in sorted(rows.items()):
    print(f"{name:28} {key:22} {statistics.median(values):10.1f}   ({', '.join(f'{v:.0f}' for v in values)})")
EOF
