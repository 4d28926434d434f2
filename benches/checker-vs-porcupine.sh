#!/usr/bin/env bash
# jepsen-lite (`raftbed check`) against Porcupine 1.3's own checker (`porctime`, built from
# ../shared/peers/porcupine with Debian's golang-go), side by side on this machine, in one run.
#
# Files: the 108 checkable histories of ../shared/testdata/porcupine, and a generated one of 1,000,000
# operations over 1,000 keys (Zipf s = 0.8, 50 processes, 5% of writes indeterminate, unique
# values, seed 1 of jepsen-lite's `gen` example). Each round visits the files in a shuffled
# order and runs both checkers on each file back to back, in a shuffled order too. Each
# checker reads the file, then checks it 3 times in one process and reports its fastest check,
# parsing excluded (raftbed: `elapsed_ms` of `check --runs 3 --json`; Porcupine: the fastest of
# `check_ms`, CheckEvents). Both use every core. The table gives medians over the rounds, the
# load average at start and end, and says whether the verdicts agree.
#
# Usage: ROUNDS=5 benches/checker-vs-porcupine.sh   (PORCTIME=path reuses a built porctime)
set -euo pipefail
cd "$(dirname "$0")/.."
unset RUSTFLAGS
SHARED=../shared
ROUNDS="${ROUNDS:-5}"
CORPUS="$SHARED/testdata/porcupine"
[[ -d $CORPUS ]] || { echo "no $CORPUS" >&2; exit 2; }
WORK=$(mktemp -d /tmp/raftbed-vs-porcupine.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cargo build --release -q --bin raftbed
cargo build --release -q -p jepsen-lite --example gen
RB=target/release/raftbed
PORCTIME="${PORCTIME:-$WORK/porctime}"
[[ -x $PORCTIME ]] || bash "$SHARED/peers/porcupine/build.sh" "$PORCTIME" >/dev/null
# porctime reads plain JSON lines: the version comment goes.
target/release/examples/gen 1000000 1000 50 0.05 1 0.8 | grep -v '^#' >"$WORK/1m.jsonl"
# Every history verdicts.tsv does not skip (etcd_095.log is empty): 108.
mapfile -t CHECKABLE < <(grep -v '^#' "$CORPUS/verdicts.tsv" | tail -n +2 | awk -F'\t' '$4 !~ /^SKIP/ {print $1}')
FILES=("${CHECKABLE[@]/#/$CORPUS/}" "$WORK/1m.jsonl")
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); ${#FILES[@]} files, $ROUNDS rounds"
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
  for file in $(printf '%s\n' "${FILES[@]}" | shuf); do
    for tool in $(printf 'raftbed\nporcupine\n' | shuf); do
      if [[ $tool == raftbed ]]; then
        out=$(timeout 600 "$RB" check --runs 3 --json "$file" || true)
      else
        out=$(timeout 600 "$PORCTIME" -runs 3 "$file" || true)
      fi
      printf '%s\t%s\t%s\t%s\n' "$round" "$tool" "$file" "$out" >>"$RESULTS"
    done
  done
  echo "round $round done, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$RESULTS" <<'EOF'
import json, statistics, sys, os
times, verdicts = {}, {}
for line in open(sys.argv[1]):
    round_, tool, path, out = line.rstrip("\n").split("\t", 3)
    name = os.path.basename(path)
    try:
        v = json.loads(out)
    except json.JSONDecodeError:
        print(f"{tool} gave no result on {name}: {out!r}")
        continue
    ms = v["elapsed_ms"] if tool == "raftbed" else min(v["check_ms"])
    times.setdefault((tool, name), []).append(ms)
    verdicts.setdefault(name, {}).setdefault(tool, set()).add(v["verdict"])
med = {k: statistics.median(v) for k, v in times.items()}
disagree = [n for n, t in verdicts.items() if len(t.get("raftbed", set()) | t.get("porcupine", set())) != 1]
corpus = sorted({n for (_, n) in med if n != "1m.jsonl"})
def row(label, names):
    r = sum(med[("raftbed", n)] for n in names)
    p = sum(med[("porcupine", n)] for n in names)
    print(f"| {label} | {r:.1f} | {p:.1f} | {p / r:.1f}x |")
print("\n| history | raftbed ms | Porcupine ms | ratio |\n|---|---|---|---|")
row(f"sum of {len(corpus)} Porcupine histories", corpus)
for name in ["c50-ok.txt", "c50-bad.txt", "etcd_002.log", "etcd_007.log", "1m.jsonl"]:
    if ("raftbed", name) in med and ("porcupine", name) in med:
        row(name, [name])
print(f"\nmedians over {len(times[('raftbed', corpus[0])])} rounds of the best of 3 checks in one process, parsing excluded")
print("verdicts agree on every file" if not disagree else f"verdicts differ on {disagree}: {[verdicts[n] for n in disagree]}")
EOF
