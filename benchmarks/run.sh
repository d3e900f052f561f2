#!/usr/bin/env bash
# Runs every speed benchmark and keeps its JSON under benchmarks/results/,
# named by benchmark, date and host. Each benchmark repeats its measurements
# and reports medians itself; BENCHMARKS.md quotes these files.
#
#   benchmarks/run.sh                 # data, train, generate
#   benchmarks/run.sh generate        # one of them
#   BIAX=.venv/bin/biax benchmarks/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIAX=${BIAX:-.venv/bin/biax}
RESULTS=benchmarks/results
mkdir -p "$RESULTS"
stamp="$(date +%Y-%m-%d)-$(hostname -s)"
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(data train generate)
for name in "${names[@]}"; do
  out="$RESULTS/$name-$stamp.json"
  echo "biax benchmark $name --json > $out" >&2
  "$BIAX" benchmark "$name" --json > "$out.tmp"
  mv "$out.tmp" "$out"
done
