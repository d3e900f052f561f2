"""Prepared dataset folders (what `biax prepare` writes), seen from outside.

Only the standard library: the command line uses these checks before it
imports TensorFlow or note_seq.
"""

import json
import os
import re

from biax_keras.errors import UserError

META_FILE = "meta.json"
# Sources `biax prepare` reads in the JSB format (Boulanger-Lewandowski 2012).
JSON_SUFFIXES = (".json",)
PICKLE_SUFFIXES = (".pickle", ".pkl")
REPORT_FILE = "report.json"
# A JSB-format file records no time resolution; its name says it
# (jsb-chorales-quarter.json, jsb-chorales-16th.json).
_RESOLUTION_WORDS = {"quarter": 1, "eighth": 2, "8th": 2, "16th": 4, "sixteenth": 4}
# What `biax prepare` quantizes MIDI to unless told otherwise: 16th notes.
DEFAULT_MIDI_STEPS_PER_QUARTER = 4


def is_jsb_file(path):
    """Whether `path` is named like a JSB-format file (.json, .pickle, .pkl)."""
    return str(path).lower().endswith(JSON_SUFFIXES + PICKLE_SUFFIXES)


def jsb_steps_per_quarter(path):
    """The time resolution a JSB-format file's name states, or None.

    `jsb-chorales-quarter.json` -> 1, `jsb-chorales-16th.json` -> 4.
    """
    words = re.split(r"[^a-z0-9]+", os.path.splitext(os.path.basename(path))[0].lower())
    found = {_RESOLUTION_WORDS[w] for w in words if w in _RESOLUTION_WORDS}
    return found.pop() if len(found) == 1 else None


def steps_per_quarter_of(source, steps_per_quarter=None, jsb=None):
    """The time resolution to prepare `source` at: the one given, else its own.

    MIDI has its own tempo and meter and is quantized to 16th notes unless
    told otherwise; a JSB-format file was quantized when it was made, and
    only its name (or the user) says to what.

    Args:
        source: what `biax prepare` reads.
        steps_per_quarter: `--steps-per-quarter`, or None.
        jsb: whether `source` is a JSB-format file (None: judged by its name).

    Returns:
        int, steps per quarter note.

    Raises:
        UserError: a JSB-format file whose name does not say its resolution,
            and none was given.
    """
    if steps_per_quarter is not None:
        return int(steps_per_quarter)
    if jsb is None:
        jsb = is_jsb_file(source)
    if not jsb:
        return DEFAULT_MIDI_STEPS_PER_QUARTER
    found = jsb_steps_per_quarter(source)
    if found is None:
        raise UserError(f"{source} does not say its time resolution (its name has neither "
                        f"'quarter' nor '16th'); give it with --steps-per-quarter "
                        f"(1 for quarter notes, 4 for 16th notes)")
    return found


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
