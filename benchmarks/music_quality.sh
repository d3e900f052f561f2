#!/usr/bin/env bash
# Music statistics of a model's pieces beside real ones, and the copy check.
#
#   benchmarks/music_quality.sh MODEL PREPARED_DIR [SAMPLES] [SECONDS]
#   benchmarks/music_quality.sh saved_models/bach data/bach 20 30
#
# Composes SAMPLES pieces (seeds 1..) of SECONDS each with MODEL into
# out/quality/MODEL/generated/, writes the test split of PREPARED_DIR as MIDI into
# out/quality/MODEL/reference/, then runs `biax evaluate --generated --reference`
# (JSON in benchmarks/results/music-MODEL-SPLIT-DATE.json, histograms in
# out/quality/MODEL/histograms.png). SPLIT picks the reference split (default
# test): a held-out split for the statistics, SPLIT=train for the copy check
# against the pieces the model learned from. GENERATE_FLAGS are added to
# `biax generate` (e.g. "--adaptive"); TAG names the result file
# (music-MODEL[-TAG]-SPLIT-DATE.json).
set -euo pipefail
cd "$(dirname "$0")/.."
BIAX=${BIAX:-.venv/bin/biax}
PYTHON=${PYTHON:-.venv/bin/python}
model=${1:?usage: $0 MODEL PREPARED_DIR [SAMPLES] [SECONDS]}
prepared=${2:?usage: $0 MODEL PREPARED_DIR [SAMPLES] [SECONDS]}
samples=${3:-20}
seconds=${4:-30}
work=out/quality/$(basename "$model")
rm -rf "$work" && mkdir -p "$work/generated" "$work/reference" benchmarks/results
"$BIAX" generate --model "$model" --out "$work/generated/piece.mid" --seconds "$seconds" \
  --num-samples "$samples" --seed 1 ${GENERATE_FLAGS:-}
"$PYTHON" - "$prepared" "$work/reference" "${SPLIT:-test}" <<'PY'
import sys
from pathlib import Path

from biax_keras import data, representation

prepared, out = sys.argv[1], Path(sys.argv[2])
meta = data.load_meta(prepared)
for index, (name, roll, _) in enumerate(data.read_pieces(prepared, sys.argv[3])):
    representation.roll_to_midi(roll, str(out / f"{index:03d}.mid"),
                                steps_per_quarter=meta["steps_per_quarter"],
                                lowest_pitch=meta["lowest_pitch"])
PY
"$BIAX" evaluate --generated "$work/generated" --reference "$work/reference" \
  --plot "$work/histograms.png" --json > "benchmarks/results/music-$(basename "$model")${TAG:+-$TAG}-${SPLIT:-test}-$(date +%Y-%m-%d).json"
"$BIAX" evaluate --generated "$work/generated" --reference "$work/reference"
