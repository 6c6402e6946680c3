#!/usr/bin/env bash
# Times every read the issue names (BENCHMARKS.md, issue 12) against a store
# filled by the load_store example: the median of 5 runs of the CLI command
# (a fresh process each time: connecting, querying, printing), output to
# /dev/null. Usage, after `cargo build --release -p xray-collector --bin
# xray-collector --example load_store` and a load_store run:
#
#   xray-collector/examples/measure_reads.sh --store /tmp/load.db BIG_ID EXECUTION_ID
#   xray-collector/examples/measure_reads.sh --database-url URL BIG_ID EXECUTION_ID
#
# BIG_ID and EXECUTION_ID are what load_store printed ("big …", "newest …").
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 (--store PATH | --database-url URL) BIG_ID EXECUTION_ID" >&2; exit 2; }
target=("$1" "$2"); big=$3; one=$4
bin=${XRAY_COLLECTOR:-target/release/xray-collector}
runs=${RUNS:-5}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

measure() {
  local label=$1; shift
  local times=()
  for _ in $(seq "$runs"); do
    local t0 t1
    t0=$(date +%s%N)
    "$bin" "$@" "${target[@]}" > /dev/null
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000000 )))
  done
  printf '%-40s %6s ms   (%s)\n' "$label" "$(printf '%s\n' "${times[@]}" | median)" "${times[*]}"
}

# A cursor DEEP_PAGES (default 100) pages of 1 000 down the newest-first list.
cursor=$("$bin" executions --limit 1000 --json "${target[@]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["next_cursor"])')
for _ in $(seq "${DEEP_PAGES:-100}"); do
  cursor=$("$bin" executions --limit 1000 --cursor "$cursor" --json "${target[@]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["next_cursor"])')
done
candidate=$("$bin" show "$one" --json "${target[@]}" | python3 -c '
import json,sys
d=json.load(sys.stdin)
print(next(dec["candidate_id"] for s in d["steps"] for dec in s.get("decisions", [])))')

measure "executions (first page)"             executions
measure "executions --project --status error" executions --project shop --status error
measure "executions --name --since 1d"        executions --name rank_catalog --since 1d
measure "executions (deep page, cursor)"   executions --cursor "$cursor"
measure "show (200 000 steps)"                show "$big"
measure "show (one execution)"                show "$one"
measure "why"                                 why "$one" "$candidate"
measure "search 'timed out' (top 20)"         search "timed out"
measure "search 'trail bottle' (top 20)"      search "trail bottle"
measure "stats --since 1d"                    stats --since 1d
measure "stats (everything)"                  stats
measure "stats --name fetch_reviews"          stats --name fetch_reviews
