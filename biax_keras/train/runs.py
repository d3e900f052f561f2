"""Run folders: what one `biax train` run owns, and whether a new run may write there.

Kept free of TensorFlow and Keras, so that `biax train` refuses a wrong
`--out` or `--data` in a fraction of a second, before their start-up.

A run folder records the dataset it was trained on in `data.json`
(`{"data": absolute path, "source": what it was prepared from}`); resuming the
run on another dataset, or starting again over a finished run, is refused
unless asked for (`overwrite`), since either would lose or mix what the run
holds.
"""

import csv
import json
import math
import os
from pathlib import Path

from biax_keras.errors import UserError

CONFIG_FILE = "config.json"
DATA_FILE = "data.json"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
TIMES_FILE = "epoch_times.csv"
BACKUP_DIR = "backup"
CHECKPOINTS_DIR = "checkpoints"
BEST_CHECKPOINT = "best.keras"
# Where the other workers of a multi-worker cluster write (see `train.train`).
WORKERS = "workers"
RUN_FILES = (CONFIG_FILE, DATA_FILE, "logs", HISTORY_FILE, TIMES_FILE, CHECKPOINTS_DIR, BACKUP_DIR,
             MODEL_FILE)


def backup_epoch(run_dir):
    """The epoch a Keras BackupAndRestore backup of the run resumes at, or None."""
    try:
        with open(Path(run_dir) / BACKUP_DIR / "training_metadata.json") as f:
            return int(json.load(f)["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _by_epoch(path, key, keep=lambda value: True):
    """`{epoch: float(row[key])}` of a CSV with an `epoch` column, or None without the file.

    Rows whose epoch or value does not parse, or whose value `keep` rejects,
    are left out; an epoch recorded twice (a kill between its records and its
    backup, then the epoch run again) keeps its last row.
    """
    values = {}
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                try:
                    epoch, value = int(row["epoch"]), float(row[key])
                except (KeyError, ValueError, TypeError):
                    continue
                if keep(value):
                    values[epoch] = value
    except OSError:
        return None
    return values


def valid_history(run_dir, key="val_frame_nll"):
    """`{epoch (from 0): value}` of `key` in the run's history.csv.

    Rows without a finite value are left out; an epoch recorded twice keeps
    its last row. Empty when there is no history.
    """
    return _by_epoch(Path(run_dir) / HISTORY_FILE, key, keep=math.isfinite) or {}


def best_epoch(run_dir, key="val_frame_nll"):
    """`(lowest value of key, its epoch counted from 1)` in history.csv, or `(None, None)`."""
    values = valid_history(run_dir, key)
    if not values:
        return None, None
    epoch = min(sorted(values), key=values.get)
    return values[epoch], epoch + 1


def training_seconds(run_dir):
    """Wall seconds of the run's finished epochs (training and validation), or None.

    Summed from epoch_times.csv, which `biax train` appends to as each epoch
    ends, so it counts the epochs of every sitting of a resumed run (an
    epoch run twice, after a kill between its records and its backup, counts
    once: its last time). None for a run folder without the file.
    """
    seconds = _by_epoch(Path(run_dir) / TIMES_FILE, "seconds")
    return None if seconds is None else sum(seconds.values())


def recorded_data(run_dir):
    """The dataset folder a run records in data.json (absolute), or None.

    A run on several datasets records the first here (see `recorded_datasets`).
    """
    datasets = recorded_datasets(run_dir)
    return datasets[0] if datasets else None


def recorded_datasets(run_dir):
    """Every dataset folder a run records in data.json (absolute), or None."""
    try:
        with open(Path(run_dir) / DATA_FILE) as f:
            values = json.load(f)
        return [str(d) for d in values.get("datasets") or [values["data"]]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _folders(data_dir):
    return [data_dir] if isinstance(data_dir, (str, os.PathLike)) else list(data_dir)


def record_data(run_dir, data_dir, source=None):
    """Write data.json: the dataset (or the list of datasets) this run trains on."""
    folders = [str(Path(d).resolve()) for d in _folders(data_dir)]
    values = {"data": folders[0], "source": source}
    if len(folders) > 1:
        values["datasets"] = folders
    path = Path(run_dir) / DATA_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(values, indent=2) + "\n")
    os.replace(tmp, path)


def _finished_epochs(run_dir):
    try:
        with open(Path(run_dir) / HISTORY_FILE) as f:
            return max(0, sum(1 for line in f if line.strip()) - 1)
    except OSError:
        return 0


def _same_folder(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def check_out(run_dir, data_dir, overwrite=False):
    """Whether a run on `data_dir` may be written to `run_dir`.

    Args:
        run_dir: the run folder asked for (`--out`).
        data_dir: the prepared dataset asked for (`--data`), or the list of
            them for a run on several.
        overwrite: replace whatever run `run_dir` holds.

    Returns:
        `"new"` (nothing there, or a run that never finished an epoch),
        `"resume"` (an unfinished run on the same data) or `"replace"` (a run
        there that `overwrite` allows to be discarded).

    Raises:
        UserError: `run_dir` is a file or holds other files; or, without
            `overwrite`, it holds a finished run or an unfinished run on
            another dataset. The message names what would be lost.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} is a file; give a folder for the run")
    if not run_dir.is_dir() or not any(p.name != WORKERS for p in run_dir.iterdir()):
        return "new"
    if not (run_dir / CONFIG_FILE).is_file():
        raise UserError(f"--out {run_dir} holds other files (no {CONFIG_FILE}); "
                        "give a new or empty folder for the run")
    epochs = _finished_epochs(run_dir)
    if (run_dir / MODEL_FILE).exists() and backup_epoch(run_dir) is None:
        if overwrite:
            return "replace"
        best = run_dir / CHECKPOINTS_DIR / BEST_CHECKPOINT
        start = best if best.is_file() else run_dir / MODEL_FILE
        raise UserError(
            f"{run_dir} holds a finished run ({epochs} epochs, {MODEL_FILE}); to train on "
            f"from it give a new --out and --init {start}, or add --overwrite to discard it")
    previous = recorded_datasets(run_dir)
    asked = _folders(data_dir)
    if previous is not None and (len(previous) != len(asked) or not all(
            _same_folder(a, b) for a, b in zip(previous, asked))):
        if overwrite:
            return "replace"
        before = " --data ".join(previous)
        raise UserError(
            f"{run_dir} is an unfinished run on {', '.join(previous)}, not on "
            f"{', '.join(map(str, asked))}; resume it with --data {before}, give a new --out, "
            f"or add --overwrite to discard it ({epochs} finished epochs, their checkpoints "
            f"and logs)")
    return "resume"


def clear(run_dir):
    """Remove what a run wrote into `run_dir` (the folder itself stays)."""
    import shutil

    for name in RUN_FILES + (WORKERS,):
        path = Path(run_dir) / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
