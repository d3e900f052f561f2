"""The JSB format (Boulanger-Lewandowski et al. 2012): pieces as lists of steps of MIDI pitches.

    {"train": [piece, ...], "valid": [...], "test": [...]}   # JSON, or the same as a pickle
    piece = [[60, 64, 67], [60, 64, 67], [62, 65], ...]     # one list of MIDI pitches per step

The four polyphonic benchmarks come in it. A file records neither its time
resolution (its name says it: `jsb-chorales-quarter.json`) nor articulation
(a note held over several steps is one note). `biax prepare` reads it into a
prepared folder (`data.sources`), and `biax evaluate --reference` compares
generated music with one split of it (`rolls`).
"""

import json
import os
import pickle
import re

import numpy as np

from biax_keras.errors import UserError
from biax_keras.music import representation

SPLITS = ("train", "valid", "test")
# A file records no time resolution; its name says it (jsb-chorales-quarter.json).
_RESOLUTION_WORDS = {"quarter": 1, "eighth": 2, "8th": 2, "16th": 4, "sixteenth": 4}
SUFFIXES = (".json", ".pickle", ".pkl")
# The format holds MIDI pitches of the 88 piano keys.
LOWEST_PITCH, NUM_NOTES = 21, 88
HIGHEST_PITCH = LOWEST_PITCH + NUM_NOTES - 1


def read(path, kind=None):
    """The splits of a JSB-format file, each piece a list of steps (lists of pitches).

    A piece that is not a list of steps is given as None (the reader of
    each piece says why it is skipped); a pitch outside the piano's keys is
    refused for the whole file (see `check_pitches`).

    Args:
        path: a .json or .pickle/.pkl file.
        kind: "json" or "pickle" (None: from the suffix).

    Returns:
        `{split: [piece or None, ...]}` for the splits the file has.

    Raises:
        UserError: a file that cannot be read, is not in the format, or
            holds pitches off the piano.
    """
    kind = kind or ("json" if str(path).lower().endswith(".json") else "pickle")
    try:
        if kind == "json":
            with open(path) as f:
                content = json.load(f)
        else:
            # A pickle can run code: only files the user names explicitly get here.
            with open(path, "rb") as f:
                content = pickle.load(f, encoding="latin1")
    except OSError as e:
        raise UserError(f"{path} cannot be read: {e.strerror or e}") from None
    except (ValueError, pickle.UnpicklingError, EOFError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not a readable JSB {kind} file ({e})") from None
    if not isinstance(content, dict) or not any(k in content for k in SPLITS):
        raise UserError(f"{path} is not in the JSB format: expected a dict with "
                        f"some of the keys {', '.join(SPLITS)}")
    splits = {}
    for split in SPLITS:
        if split not in content:
            continue
        pieces = content[split]
        if not isinstance(pieces, (list, tuple)):
            raise UserError(f"{path}: {split!r} should be a list of pieces")
        splits[split] = []
        for number, piece in enumerate(pieces):
            try:
                steps = [list(step) for step in piece]
            except TypeError:
                steps = None
            if steps is not None:
                check_pitches(path, f"{split}/{number}", steps)
            splits[split].append(steps)
    return splits


def check_pitches(path, piece, steps):
    """Refuses a JSB-format file whose pitches leave the piano's 88 keys.

    The format stores MIDI pitches 21..108. A pitch outside them is not a
    note too high or too low for a model (those are dropped and counted):
    it means the file holds something else, most often key indices 0..87,
    which read as MIDI pitches would put every piece a few octaves off.
    """
    for step, pitches in enumerate(steps):
        for pitch in pitches:
            if (isinstance(pitch, (int, float, np.integer, np.floating))
                    and not LOWEST_PITCH <= pitch <= HIGHEST_PITCH):
                raise UserError(
                    f"{path}: piece {piece} step {step} has pitch {pitch!r}, outside "
                    f"the JSB format's MIDI pitches {LOWEST_PITCH}..{HIGHEST_PITCH}; "
                    f"write MIDI pitch numbers (middle C is 60), not key indices")


def rolls(path, split, steps_per_quarter, lowest_pitch=0,
          num_notes=representation.NUM_MIDI_PITCHES):
    """One split of a JSB-format file as play-only rolls.

    Returns:
        `(pieces, skipped)` as `midi_files.read_rolls` gives them: pieces as
        `(name, roll, beat)`, names `FILE:split/index`.

    Raises:
        UserError: see `read`; a split the file does not have or that is empty.
    """
    splits = read(path)
    if not splits.get(split):
        held = [s for s, pieces in splits.items() if pieces]
        raise UserError(f"{path} has no pieces in its {split!r} split; it holds "
                        f"{', '.join(held) or 'none'}")
    pieces, skipped = [], []
    for number, steps in enumerate(splits[split]):
        name = f"{path}:{split}/{number}"
        try:
            if steps is None:
                raise representation.InvalidSequenceError("not a list of steps")
            result = representation.pitch_sets_to_roll(steps, steps_per_quarter, lowest_pitch,
                                                       num_notes)
        except representation.RepresentationError as e:
            skipped.append({"path": name, "reason": str(e)})
            continue
        pieces.append((name, result.roll, result.beat))
    return pieces, skipped


def is_jsb_file(path):
    """Whether `path` is named like a JSB-format file (.json, .pickle, .pkl)."""
    return str(path).lower().endswith(SUFFIXES)


def on_finer_grid(splits, times):
    """The same music on a grid `times` finer: every step of every piece written `times` times.

    A play-only roll holds a note over all the copies as it held it over the
    one step, so no onset is added. The style model learns the quarter-note
    chorales this way at eighth notes (`training/jsb_at_eighths.py`), and its
    samples are compared with them on that grid (`benchmarks/against_collection.py`).

    Args:
        splits: `{split: [piece, ...]}`, each piece a list of steps.
        times: a positive whole number.
    """
    return {split: [[step for step in piece for _ in range(times)] for piece in pieces]
            for split, pieces in splits.items()}


def steps_per_quarter_of_name(path):
    """The time resolution a JSB-format file's name states, or None.

    `jsb-chorales-quarter.json` -> 1, `jsb-chorales-16th.json` -> 4.
    """
    words = re.split(r"[^a-z0-9]+", os.path.splitext(os.path.basename(path))[0].lower())
    found = {_RESOLUTION_WORDS[w] for w in words if w in _RESOLUTION_WORDS}
    return found.pop() if len(found) == 1 else None
