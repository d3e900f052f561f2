#!/usr/bin/env bash
# The style model: one biaxial network trained on the train splits of all four
# polyphonic collections at once (styles jsb_chorales, musedata, nottingham,
# piano_midi_de), early-stopped on the mean of their valid NLLs, then scored on
# each valid split in its own style.
#
#   benchmarks/styles.sh                     # prepare, train (or resume), score
#   INIT=training/stages/styles-1/best.keras RUN=runs/styles-2 benchmarks/styles.sh
#   FINETUNE=1 benchmarks/styles.sh          # then fine-tune on each collection alone
#
# Every collection is trained at eighth notes, the grid of three of them; the
# JSB chorales (quarter notes) are written at eighth notes first, each step
# twice (training/jsb_at_eighths.py). Every dataset gets the same share of the
# training windows. INIT continues from a staged checkpoint in a new RUN
# folder, with its optimizer's state: a run that needs more than one sitting
# goes on from the checkpoint committed at the end of the last.
#
# With FINETUNE=1, the finished model is then fine-tuned on MuseData,
# Nottingham and Piano-midi.de alone (their own configs at a learning rate of
# 3e-4 with the style model's weight decay and averaged weights, so that its
# optimizer goes on; patience 10, in RUN-NAME), each scored on its valid split in its own
# style: the "joint + fine-tune" rows of the ablation table. (JSB is left out:
# the joint model composes JSB at eighth notes, the benchmark is at quarter
# notes, and the JSB model alone is already below the published figure.)
#
# Environment: BIAX, DATA_DIR (default ../shared/data/polyphonic), RUN (default
# runs/styles), PREPARED (default data/styles), RESULTS (default
# benchmarks/results), INIT, EXTRA_TRAIN_FLAGS. Scores go to
# RESULTS/styles-NAME-valid-DATE.json.
set -euo pipefail
{
cd "$(dirname "$0")/.."
BIAX=${BIAX:-.venv/bin/biax}
DATA_DIR=${DATA_DIR:-../shared/data/polyphonic}
RUN=${RUN:-runs/styles}
PREPARED=${PREPARED:-data/styles}
RESULTS=${RESULTS:-benchmarks/results}
PYTHON=${PYTHON:-.venv/bin/python}

for file in jsb-chorales-quarter.json musedata.json nottingham.json piano-midi-de.json; do
  if [ ! -f "$DATA_DIR/$file" ]; then
    echo "benchmarks/styles.sh: $DATA_DIR/$file not found; set DATA_DIR to the folder holding" \
         "the four JSON files" >&2
    exit 2
  fi
done
mkdir -p "$PREPARED"
if [ ! -f "$PREPARED/jsb-chorales-8th.json" ]; then
  "$PYTHON" training/jsb_at_eighths.py "$DATA_DIR/jsb-chorales-quarter.json" \
      "$PREPARED/jsb-chorales-8th.json"
fi
# style -> source
declare -A SOURCES=(
  [jsb_chorales]="$PREPARED/jsb-chorales-8th.json"
  [musedata]="$DATA_DIR/musedata.json"
  [nottingham]="$DATA_DIR/nottingham.json"
  [piano_midi_de]="$DATA_DIR/piano-midi-de.json"
)
STYLES="jsb_chorales musedata nottingham piano_midi_de"
data_flags=()
for style in $STYLES; do
  if [ ! -f "$PREPARED/$style/meta.json" ]; then
    "$BIAX" prepare "${SOURCES[$style]}" --out "$PREPARED/$style" --style "$style" \
        --steps-per-quarter 2 --lowest-pitch 21 --num-notes 88
  fi
  data_flags+=(--data "$PREPARED/$style")
done
if [ ! -f "$RUN/model.keras" ]; then
  init_flags=()
  if [ -n "${INIT:-}" ]; then init_flags=(--init "$INIT"); fi
  # shellcheck disable=SC2086
  "$BIAX" train "${data_flags[@]}" --out "$RUN" --config training/configs/styles.json \
      "${init_flags[@]}" ${EXTRA_TRAIN_FLAGS:-}
fi
date=$(date +%F)
for style in $STYLES; do
  "$BIAX" evaluate --model "$RUN" --data "${SOURCES[$style]}" --split valid --style "$style" \
      --json > "$RESULTS/styles-$style-valid-$date.json"
  echo "$style: $(grep -o '"frame_nll": [0-9.]*' "$RESULTS/styles-$style-valid-$date.json")"
done
if [ -n "${FINETUNE:-}" ]; then
  for style in musedata nottingham piano_midi_de; do
    tuned="$RUN-$style"
    if [ ! -f "$tuned/model.keras" ]; then
      "$BIAX" train --data "$PREPARED/$style" --out "$tuned" \
          --config "training/configs/$style.json" \
          --init "$RUN/model.keras" --learning-rate 0.0003 --weight-decay 0.1 --ema 0.995 \
          --patience 10
    fi
    "$BIAX" evaluate --model "$tuned" --data "${SOURCES[$style]}" --split valid --style "$style" \
        --json > "$RESULTS/styles-finetuned-$style-valid-$date.json"
    echo "$style, fine-tuned: $(grep -o '"frame_nll": [0-9.]*' "$RESULTS/styles-finetuned-$style-valid-$date.json")"
  done
fi
exit 0
}
