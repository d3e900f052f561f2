"""Sets of MIDI files: finding them, and reading each as a roll or a reason to skip it.

`biax evaluate` (scoring MIDI, comparing sets of it) and `biax render` read
files the same way: every file through `representation.midi_to_roll`, with
its bounds on length and memory, a file that cannot be used skipped with a
one-line reason, never the end of the batch.
"""

import logging
import os

import numpy as np

from biax_keras.music import representation

log = logging.getLogger(__name__)
# An onset further than this from the nearest step (in steps) is off the grid.
_OFF_GRID_STEPS = 0.1


def midi_files(path):
    """`path` itself if it is a file, else the MIDI files under it, recursively, sorted."""
    if os.path.isfile(path):
        return [path]
    found = []
    for folder, subfolders, files in os.walk(path):
        subfolders.sort()
        found += [os.path.join(folder, f) for f in sorted(files)
                  if f.lower().endswith(representation.MIDI_SUFFIXES)]
    return found


def skip_reason(error):
    """A reading error as one line, whatever the parser's message looks like."""
    return " ".join(str(error).split()) or type(error).__name__


def read_rolls(files, steps_per_quarter, lowest_pitch=0, num_notes=representation.NUM_MIDI_PITCHES,
               warn=True):
    """Read MIDI files as rolls; the ones that cannot be used are skipped, with why.

    Args:
        files: MIDI file paths (e.g. from `midi_files`).
        steps_per_quarter, lowest_pitch, num_notes: the grid (default: all
            128 pitches, so that no note is dropped).
        warn: log a warning for each file skipped.

    Returns:
        `(pieces, skipped)`: pieces as `(path, roll, beat)` in the order of
        `files`; skipped as `[{"path", "reason"}]`.
    """
    pieces, skipped = [], []
    for path in files:
        try:
            roll, beat = representation.midi_to_roll(
                path, steps_per_quarter=steps_per_quarter, lowest_pitch=lowest_pitch,
                num_notes=num_notes)
        except (representation.RepresentationError, OSError) as e:
            skipped.append({"path": path, "reason": skip_reason(e)})
            continue
        if not len(roll):
            skipped.append({"path": path, "reason": "no steps: the file holds no notes"})
            continue
        pieces.append((path, roll, beat))
    if warn:
        for item in skipped:
            log.warning("skipped %s: %s", item["path"], item["reason"])
    return pieces, skipped


def off_grid_share(path, steps_per_quarter):
    """The share of a MIDI file's note onsets that fall between the steps of a grid.

    Music composed on a grid of 16th notes and read on a grid of quarter notes
    has most of its onsets between steps; music composed on the grid has none.

    Returns:
        A float in [0, 1] (0 for a file without notes).

    Raises:
        RepresentationError, OSError: a file that cannot be read.
    """
    sequence = representation.read_midi(path, steps_per_quarter)
    starts = np.array([n.start_time for n in sequence.notes if not n.is_drum], np.float64)
    if not starts.size:
        return 0.0
    steps = representation._to_quarters(starts, representation._tempo_map(sequence)) \
        * steps_per_quarter
    return float(np.mean(np.abs(steps - np.round(steps)) > _OFF_GRID_STEPS))
