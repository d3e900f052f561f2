#!/usr/bin/env bash
# The quality recipe for one of the four polyphonic datasets of
# Boulanger-Lewandowski et al. (2012): prepare the JSON file, train the
# play-only model of training/configs/<config>.json with early stopping on
# valid, then score the best weights on whole pieces of valid and train.
#
#   benchmarks/quality.sh jsb_chorales | musedata | nottingham | piano_midi_de
#   make bench-quality DATASET=nottingham          # the same
#
# Where the dataset's config has a second stage, training/configs/<config>-long.json
# (Nottingham's and MuseData's), the best weights are then fine-tuned with it,
# on longer windows at a lower learning rate, in RUNS/<dataset>-long; a third,
# <config>-long2.json (both of theirs), fine-tunes that stage's best weights in
# RUNS/<dataset>-long2, and so on. The last stage's run is the one scored.
#
# Every stage is safe to run again: a prepared folder is reused, a stopped
# training resumes from its last finished epoch (BackupAndRestore), and a
# finished run is only scored. Scores go to
# benchmarks/results/quality-<dataset>-<split>-<date>.json.
#
# Environment: BIAX (the biax command), DATA_DIR (the folder holding the JSON
# files; default ../shared/data/polyphonic), RUNS (default runs), PREPARED
# (default data), RESULTS (default benchmarks/results), CONFIG (a config file
# in place of the dataset's own; it leaves out the later stages unless
# LONG_CONFIG names them), LONG_CONFIG (the later stages' configs, separated by
# spaces, in place of the dataset's) and EXTRA_TRAIN_FLAGS (added to the first
# stage's `biax train`, e.g. for an ablation: "--window 32").
set -euo pipefail
# One block, which bash reads whole before running it: editing this file
# while a training runs under it cannot change what the run does next.
{
cd "$(dirname "$0")/.."
BIAX=${BIAX:-.venv/bin/biax}
DATA_DIR=${DATA_DIR:-../shared/data/polyphonic}
RUNS=${RUNS:-runs}
PREPARED=${PREPARED:-data}
RESULTS=${RESULTS:-benchmarks/results}

dataset=${1:-}
# name -> JSON file, steps per quarter note of the file, config.
# JSB is sampled at quarter notes; the other three at eighth notes.
case "$dataset" in
  jsb_chorales)  file=jsb-chorales-quarter.json; spq=1; config=jsb ;;
  musedata)      file=musedata.json;             spq=2; config=musedata ;;
  nottingham)    file=nottingham.json;           spq=2; config=nottingham ;;
  piano_midi_de) file=piano-midi-de.json;        spq=2; config=piano_midi_de ;;
  *)
    echo "benchmarks/quality.sh: unknown dataset '${dataset}'; choose one of" \
         "jsb_chorales, musedata, nottingham, piano_midi_de" >&2
    exit 2 ;;
esac

source_file="$DATA_DIR/$file"
if [ ! -f "$source_file" ]; then
  echo "benchmarks/quality.sh: $source_file not found; set DATA_DIR to the folder" \
       "holding $file (JSON: a dict of splits, each a list of pieces of steps of MIDI pitches)" >&2
  exit 2
fi

prepared="$PREPARED/$dataset"
run="$RUNS/$dataset"
if [ ! -f "$prepared/meta.json" ]; then
  "$BIAX" prepare "$source_file" --out "$prepared" \
      --steps-per-quarter "$spq" --lowest-pitch 21 --num-notes 88
fi
if [ ! -f "$run/model.keras" ]; then
  # shellcheck disable=SC2086
  "$BIAX" train --data "$prepared" --out "$run" \
      --config "${CONFIG:-training/configs/$config.json}" ${EXTRA_TRAIN_FLAGS:-}
fi

# Fine-tuning stages, each from the best weights of the stage before it:
# <config>-long.json in RUNS/<dataset>-long, then <config>-long2.json in
# RUNS/<dataset>-long2, and so on while the files exist.
suffix() { if [ "$1" -gt 1 ]; then echo "$1"; fi; }  # stage 1: "-long", 2: "-long2", ...
long_configs=${LONG_CONFIG:-}
if [ -z "$long_configs" ] && [ -z "${CONFIG:-}" ]; then
  stage=1
  while [ -f "training/configs/$config-long$(suffix $stage).json" ]; do
    long_configs="$long_configs training/configs/$config-long$(suffix $stage).json"
    stage=$((stage + 1))
  done
fi
stage=1
for long_config in $long_configs; do
  long_run="$RUNS/$dataset-long$(suffix $stage)"
  if [ ! -f "$long_run/model.keras" ]; then
    "$BIAX" train --data "$prepared" --out "$long_run" --config "$long_config" \
        --init "$run/model.keras"
  fi
  run=$long_run
  stage=$((stage + 1))
done

mkdir -p "$RESULTS"
stamp=$(date +%Y-%m-%d)
for split in valid train; do
  out="$RESULTS/quality-$dataset-$split-$stamp.json"
  # The JSON file records no resolution: say it (a mismatch with the model is refused).
  "$BIAX" evaluate --model "$run" --data "$source_file" --split "$split" \
      --steps-per-quarter "$spq" --json > "$out.tmp"
  mv "$out.tmp" "$out"
  echo "$split: $(cat "$out")"
done
exit
}
