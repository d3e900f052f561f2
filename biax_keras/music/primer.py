"""Primers: the opening of a MIDI file, in a model's note range, with its tempo and meter.

    primer = read_primer("fur-elise.mid", model.config, seconds=10)
    roll = biax_keras.generate(model, 160, primer=primer)
    # primer.qpm and primer.time_signature are what to write the piece with.

A primer is quantized like training data (metrical steps through its tempo
map, bar positions from its time signatures), so the model hears it as it
heard its training pieces; the new steps' bar positions continue its meter.
"""

import logging
import math
import os
from typing import NamedTuple, Optional, Tuple

import numpy as np

from biax_keras.errors import UserError
from biax_keras.music import representation

log = logging.getLogger(__name__)


class Primer(NamedTuple):
    """A primer read from MIDI, in a model's note range.

    Attributes:
        roll: np.uint8 `(steps, num_notes, 2)`.
        beat: np.int32 `(steps,)`, bar position of each step.
        notes_dropped: notes of the file outside the model's range.
        qpm: the file's tempo where the primer ends (quarter notes per minute).
        time_signature: `(numerator, denominator)` in force where it ends.
        steps_in_file: steps of the whole file (more than `len(roll)` when
            only its opening was taken).
    """

    roll: np.ndarray
    beat: np.ndarray
    notes_dropped: int
    qpm: float = representation.DEFAULT_QPM
    time_signature: Tuple[int, int] = representation.DEFAULT_TIME_SIGNATURE
    steps_in_file: Optional[int] = None


def _tempo_at(ns, quarters):
    """Tempo (qpm) in force at `quarters` quarter notes into the sequence."""
    times, at_quarters, qpms = representation._tempo_map(ns)
    k = max(int(np.searchsorted(at_quarters, quarters, side="right")) - 1, 0)
    return float(qpms[k])


def _meter_at(ns, step, steps_per_quarter):
    """Time signature in force at `step` (4/4 before the first one)."""
    tempo_map = representation._tempo_map(ns)
    meter = representation.DEFAULT_TIME_SIGNATURE
    for ts in sorted(ns.time_signatures, key=lambda t: t.time):
        if ts.numerator <= 0 or ts.denominator <= 0 or not math.isfinite(ts.time):
            continue  # as in representation: a malformed meter event is ignored
        at = int(representation._to_steps(
            representation._to_quarters(np.float64(ts.time), tempo_map), steps_per_quarter))
        if at > step:
            break
        meter = (int(ts.numerator), int(ts.denominator))
    return meter


def _length_text(sequence, steps, steps_per_quarter):
    """`steps` of the file in its own tempo, as a person says it: "141.0 s (564 steps)"."""
    seconds = _seconds_at(sequence, steps / steps_per_quarter)
    return f"{seconds:.1f} s ({steps} steps)"


def _seconds_at(sequence, quarters):
    """Seconds into `sequence` at `quarters` quarter notes, through its tempo map."""
    times, at_quarters, qpms = representation._tempo_map(sequence)
    k = max(int(np.searchsorted(at_quarters, quarters, side="right")) - 1, 0)
    return float(times[k] + (quarters - at_quarters[k]) * 60.0 / qpms[k])


def read_primer(path, config, num_notes=None, steps=None, seconds=None, *, data=None,
                max_steps=representation.DEFAULT_MAX_STEPS):
    """Read a MIDI primer (or its opening) into a model's note range.

    Notes outside the range are dropped, counted and logged as a warning.

    Args:
        path: a MIDI file, or with `data` the name its messages give it.
        config: the model's `BiaxialConfig`.
        num_notes: notes of the roll (default: the model's `num_notes`).
        steps: keep only the first `steps` steps (None: all).
        seconds: keep only the first `seconds` of the file, in its own
            tempo (None: all). At most one of `steps` and `seconds`.
        data: the file's bytes (an upload), read instead of `path`.
        max_steps: refuse files longer than this many steps.

    Returns:
        A `Primer`.

    Raises:
        UserError: the file does not exist, is not MIDI, has no notes (in the
            model's range, or in the part kept), or both `steps` and
            `seconds` are given.
    """
    if steps is not None and seconds is not None:
        raise UserError("give the primer's length in steps or in seconds, not both")
    if steps is not None and (isinstance(steps, bool) or int(steps) != steps or steps <= 0):
        raise UserError(f"the primer's steps must be a positive whole number, got {steps!r}")
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise UserError(f"the primer's seconds must be positive, got {seconds!r}")
    num_notes = int(num_notes or config.num_notes)
    spq = config.steps_per_quarter
    top = config.lowest_pitch + num_notes - 1
    if data is None and not os.path.isfile(path):
        raise UserError(f"primer {path} does not exist or is not a file")
    if data is not None and not data:
        raise UserError(f"{path} is empty; choose a MIDI file with notes")
    try:
        sequence = representation.read_midi(path if data is None else data, spq,
                                            max_steps=max_steps)
        result = representation.note_sequence_to_roll(sequence, spq, config.lowest_pitch,
                                                      num_notes, max_steps=max_steps)
    except representation.OutOfRangeError:
        raise UserError(
            f"primer {path}: every note lies outside the model's range "
            f"(MIDI {config.lowest_pitch}..{top}); nothing to continue from") from None
    except representation.RepresentationError as e:
        raise UserError(f"{path} cannot be used as a primer: {e}") from None
    except OSError as e:
        raise UserError(f"primer {path} cannot be read: {e.strerror or e}") from None
    roll, beat = result.roll, result.beat
    asked = None
    if seconds is not None:
        quarters = representation._to_quarters(np.float64(seconds),
                                                representation._tempo_map(sequence))
        steps = max(int(representation._to_steps(quarters, spq)), 1)
        asked = f"--primer-seconds {seconds:g}"
    elif steps is not None:
        asked = f"--primer-steps {steps}"
    if steps is not None:
        if steps > len(roll):
            log.warning("note: primer %s is %s long, shorter than %s: all of it is used",
                        path, _length_text(sequence, len(roll), spq), asked)
        roll, beat = roll[:steps], beat[:steps]
    if not roll[..., 0].any():
        if len(roll) < len(result.roll):
            raise UserError(f"the opening of primer {path} that {asked} keeps "
                            f"({_length_text(sequence, len(roll), spq)}) is silent: a rest "
                            f"before its first note; keep more of it")
        raise UserError(f"primer {path} has no notes in the model's range "
                        f"(MIDI {config.lowest_pitch}..{top})")
    if result.notes_dropped:
        log.warning("warning: %d notes of primer %s lie outside the model's range (MIDI %d..%d) "
                    "and were dropped", result.notes_dropped, path, config.lowest_pitch, top)
    last = len(roll) - 1
    return Primer(roll, beat, int(result.notes_dropped),
                  qpm=_tempo_at(sequence, last / spq),
                  time_signature=_meter_at(sequence, last, spq),
                  steps_in_file=len(result.roll))
