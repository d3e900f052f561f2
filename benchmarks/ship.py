#!/usr/bin/env python3
"""Copy a run's best model into saved_models/ without its optimizer's state.

    python benchmarks/ship.py runs/nottingham saved_models/nottingham [--overwrite]
    python benchmarks/ship.py runs/styles saved_models/piano_midi_de --style piano_midi_de

Takes RUN/model.keras when the run has finished, else its best checkpoint
so far (RUN/checkpoints/best.keras: an unfinished run can be shipped while
it trains on), or, where RUN is a staged folder of a training that goes on
in stretches (training/stages/NAME: best.keras and each stretch's
stretch-N-{config.json,history.csv,epoch_times.csv}), its best.keras with the
last stretch's config. It loads it and and writes DEST/model.keras (weights and config,
no optimizer: about 4 bytes per parameter) and DEST/config.json (the run's
config). Prints, as JSON, which file and epoch were shipped and the run's
training time so far (None for a run from before epoch_times.csv). An existing
DEST/model.keras is replaced only with --overwrite; the files are written
beside their targets and renamed, so an interrupted copy leaves the old
model whole. The model card (DEST/MODEL_CARD.md) is the author's to write.

With --style, a style model is shipped fixed in that style (or blend) as a
model without styles, the same maths (`styles.in_one_style`): it scores
any file, whatever its name, and composes in that style with no `--style`.
Its config.json is the run's with the model's `styles` taken out.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path


def fail(message):
    print(f"ship: {message}", file=sys.stderr)
    sys.exit(2)


def staged_stretches(folder):
    """The stretch numbers of a staged folder (stretch-N-config.json beside
    best.keras), in order; empty for a run folder."""
    if not (folder / "best.keras").is_file():
        return []
    found = []
    for path in folder.glob("stretch-*-config.json"):
        number = path.name[len("stretch-"):-len("-config.json")]
        if number.isdigit():
            found.append(int(number))
    return sorted(found)


def stretch_seconds(folder, stretches, runs):
    """Wall seconds of every stretch's epochs, summed; None if one has no times."""
    total = 0.0
    for number in stretches:
        with tempfile.TemporaryDirectory() as scratch:
            times = folder / f"stretch-{number}-{runs.TIMES_FILE}"
            if not times.is_file():
                return None
            shutil.copyfile(times, Path(scratch) / runs.TIMES_FILE)
            total += runs.training_seconds(scratch)
    return total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run folder written by biax train")
    parser.add_argument("dest", help="the folder to ship to, e.g. saved_models/NAME")
    parser.add_argument("--overwrite", action="store_true", help="replace DEST/model.keras")
    parser.add_argument("--style", default=None,
                        help="ship a style model fixed in this style (NAME or NAME=W,...)")
    args = parser.parse_args(argv)

    run, dest = Path(args.run), Path(args.dest)
    finished = run / "model.keras"
    stretches = staged_stretches(run)
    if stretches:
        source = run / "best.keras"
    else:
        source = finished if finished.is_file() else run / "checkpoints" / "best.keras"
    if not source.is_file():
        fail(f"{run} holds neither model.keras nor checkpoints/best.keras (nor, staged, "
             f"best.keras with stretch-N-config.json); train it first")
    if (dest / "model.keras").exists() and not args.overwrite:
        fail(f"{dest}/model.keras exists; add --overwrite to replace it")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    import biax_keras  # noqa: F401  (registers the model's classes)
    from biax_keras.errors import UserError
    from biax_keras.files import write_atomic
    from biax_keras.generation import styles
    from biax_keras.train import runs

    # A checkpoint being rewritten by the training is read from a copy.
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "source.keras"
        shutil.copyfile(source, copy)
        try:
            model = keras.saving.load_model(copy, compile=False, safe_mode=True)
        except Exception as e:  # noqa: BLE001 (keras raises many kinds)
            fail(f"cannot load {source}: {str(e).strip().splitlines()[0]}")
    if args.style is not None:
        try:
            model = styles.in_one_style(model, args.style)
        except UserError as e:
            fail(f"--style: {e}")
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "model.keras"
    write_atomic(target, model.save, suffix=".keras")
    config = run / (f"stretch-{stretches[-1]}-config.json" if stretches else "config.json")
    if config.is_file():
        if args.style is None:
            write_atomic(dest / "config.json", lambda tmp: shutil.copyfile(config, tmp))
        else:
            resolved = json.loads(config.read_text())
            resolved["model"]["styles"] = None
            write_atomic(dest / "config.json",
                         lambda tmp: Path(tmp).write_text(json.dumps(resolved, indent=2) + "\n"))
    with tempfile.TemporaryDirectory() as scratch:
        # A staged folder's last stretch, read as the run folder it was.
        last = run
        if stretches:
            last = Path(scratch)
            for name in (runs.HISTORY_FILE, runs.TIMES_FILE):
                staged = run / f"stretch-{stretches[-1]}-{name}"
                if staged.is_file():
                    shutil.copyfile(staged, last / name)
        history = runs.valid_history(last)
        nll, epoch = runs.best_epoch(last)
        seconds = runs.training_seconds(last)
        if stretches:
            seconds = stretch_seconds(run, stretches, runs)
    print(json.dumps({"source": str(source), "shipped": str(target), "finished": source == finished,
                      "style": args.style, "stretches": len(stretches) or None,
                      "best_epoch": epoch, "best_windowed_val_frame_nll": nll,
                      "epochs_recorded": max(history, default=-1) + 1,
                      "training_seconds": seconds,
                      "parameters": model.count_params(),
                      "bytes": target.stat().st_size}))


if __name__ == "__main__":
    main()
