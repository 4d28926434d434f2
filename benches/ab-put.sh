#!/usr/bin/env bash
# put throughput of two raftbed binaries, A/B alternated: each pair starts a fresh 5-node
# cluster with A, runs `bench --workload put` with 64 clients, stops it, then the same with B.
# Prints each run's RESULT line, then the medians and B/A, with the load average.
#
# Usage: PAIRS=5 benches/ab-put.sh BINARY_A BINARY_B
# (e.g. a build of the commit before a change as A, target/release/raftbed as B)
set -euo pipefail
A=$1 B=$2
PAIRS="${PAIRS:-5}"
WORK=$(mktemp -d /tmp/raftbed-ab.XXXXXX)
trap '"$A" cluster down --data-dir "$WORK/c" >/dev/null 2>&1 || true; "$B" cluster down --data-dir "$WORK/c" >/dev/null 2>&1 || true' EXIT
run() { # label binary
  rm -rf "$WORK/c"
  "$2" cluster up --data-dir "$WORK/c" --base-port 27000 --detach --heartbeat 100ms --election-timeout 1000ms >/dev/null
  local eps
  eps=$(python3 -c "import json,sys; print(','.join(json.load(open(sys.argv[1]))['endpoints']))" "$WORK/c/cluster.json")
  timeout 300 "$B" bench --endpoints "$eps" --name "$1" --workload put --clients 64 --conns 8 --ops 20000 | tee -a "$WORK/results"
  "$2" cluster down --data-dir "$WORK/c" >/dev/null
}
for i in $(seq 1 "$PAIRS"); do
  run A "$A"
  run B "$B"
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
done
python3 - "$WORK/results" <<'PY'
import statistics, sys
ops = {}
for line in open(sys.argv[1]):
    fields = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
    ops.setdefault(fields["name"], []).append(float(fields["ops_s"]))
a, b = statistics.median(ops["A"]), statistics.median(ops["B"])
print(f"put-64 medians over {len(ops['A'])} pairs: A {a:.0f} ops/s, B {b:.0f} ops/s, B/A {b/a:.3f}")
PY
