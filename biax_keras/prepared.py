"""Prepared dataset folders (what `biax prepare` writes), seen from outside.

Only the standard library: the command line uses these checks before it
imports TensorFlow or note_seq.
"""

import json
import os

from biax_keras.errors import UserError

META_FILE = "meta.json"
# Sources `biax prepare` reads in the JSB format (Boulanger-Lewandowski 2012).
JSON_SUFFIXES = (".json",)
PICKLE_SUFFIXES = (".pickle", ".pkl")
REPORT_FILE = "report.json"


def is_prepared(folder):
    """Whether `folder` holds a prepared dataset (its meta.json)."""
    return os.path.isfile(os.path.join(folder, META_FILE))


def describe(folder):
    """A few words on what a prepared folder holds, e.g. "350 pieces from bach"."""
    pieces, source = None, None
    try:
        with open(os.path.join(folder, REPORT_FILE)) as f:
            report = json.load(f)
        pieces = sum(int(n) for n in report.get("pieces", {}).values())
        source = report.get("source")
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    if source is None:
        try:
            with open(os.path.join(folder, META_FILE)) as f:
                source = json.load(f).get("source")
        except (OSError, ValueError, AttributeError):
            pass
    words = f"{pieces} pieces" if pieces is not None else "a prepared dataset"
    return words + (f" from {source}" if source else "")


def check_out(out, overwrite=False):
    """Whether `biax prepare` may write a dataset to `out`.

    Raises:
        UserError: `out` is a file, a folder of other files, or (without
            `overwrite`) a prepared dataset, named with what it holds.
    """
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out} is a file; give a folder")
    if not os.path.isdir(out) or not os.listdir(out):
        return
    if not is_prepared(out):
        raise UserError(f"--out {out} is a folder with other files in it; give a new or "
                        f"empty folder, or a prepared dataset to replace with --overwrite")
    if not overwrite:
        raise UserError(f"--out {out} already holds a prepared dataset ({describe(out)}), "
                        f"which runs may have been trained on; choose another --out, or add "
                        f"--overwrite to replace it")
