"""NoteSequence <-> state roll: metrical quantization and bar positions.

A piece becomes a *state roll* of shape `(steps, num_notes, 2)`: channel 0 is
*play* (the note sounds during the step), channel 1 is *articulate* (the note
is struck at the step). A held note is `[1, 0]` after its first step, a
re-struck note is `[1, 1]` again. Note index `i` is MIDI pitch
`lowest_pitch + i`. Beside the roll goes `beat`, the position of every step in
its bar, counted in steps from the bar line.

Quantization is metrical: every note time in seconds is turned into quarter
notes by integrating the tempo map, then rounded to the step grid. This works
for any number of tempo changes (note_seq's `quantize_note_sequence` refuses
more than one).

Every failure a user's file can cause is a `RepresentationError` subclass whose
message is a short human reason, so that callers can catch, count and report.

This module must not import TensorFlow: `biax prepare` runs it in worker
processes that should start fast and stay small.
"""

import io
import logging
import math
import os
import warnings
from typing import NamedTuple

import numpy as np

with warnings.catch_warnings():
    # note_seq imports pydub, which warns at import that ffmpeg is missing;
    # nothing here decodes audio through it, and `import biax_keras` must be quiet.
    warnings.filterwarnings("ignore", message="Couldn't find ffmpeg", category=RuntimeWarning)
    import note_seq
    from note_seq.protobuf import music_pb2

from biax_keras.files import write_atomic

log = logging.getLogger(__name__)

DEFAULT_STEPS_PER_QUARTER = 4
DEFAULT_LOWEST_PITCH = 24
DEFAULT_NUM_NOTES = 78
DEFAULT_MAX_STEPS = 20000

# What MIDI assumes when a file says nothing: 120 quarters per minute, 4/4.
DEFAULT_QPM = 120.0
DEFAULT_TIME_SIGNATURE = (4, 4)

# What a MIDI file's name ends in (.kar: karaoke MIDI, a MIDI file with lyrics).
MIDI_SUFFIXES = (".mid", ".midi", ".kar")

DEFAULT_VELOCITY = 80
SUSTAIN_PEDAL = 64
DRUM_CHANNEL = 9  # channel 10, counted from 1
NUM_MIDI_PITCHES = 128

# Resolution of the MIDI files we write; divisible by 1, 2, 3, 4, 5, 6, 8, 12
# and 16, so every common step grid lands on whole ticks.
WRITE_TICKS_PER_QUARTER = 480

# A MIDI file of music is at most a few megabytes; anything larger is refused
# before it is parsed, which bounds the time and memory one file can take.
MAX_MIDI_BYTES = 32 * 1024 * 1024
# pretty_midi builds a float64 array with one entry per tick up to the last
# event. Files with a finer resolution or events far past the last note are
# rewritten so that array stays below this many ticks (64 MB).
_MAX_TICKS = 8_000_000
_MAX_TICKS_PER_QUARTER = 960
# The finest resolution we rescale to: still 8 ticks per step at 4 steps per
# quarter, so rounding ticks cannot move a note to another step.
_MIN_TICKS_PER_STEP = 8


class RepresentationError(ValueError):
    """A piece cannot become a roll; the message is a short human reason."""


class MidiReadError(RepresentationError):
    """The file is not a readable MIDI file (empty, not MIDI, truncated, corrupt)."""


class InvalidTempoError(RepresentationError):
    """The tempo map has a zero, negative or non-finite tempo."""


class InvalidSequenceError(RepresentationError):
    """The NoteSequence has times that cannot be placed on the step grid."""


class NoNotesError(RepresentationError):
    """The piece has no notes that could be played (none at all, or only drums)."""


class UnendedNotesError(NoNotesError):
    """Notes are struck but never released, so none has a length."""


class OutOfRangeError(NoNotesError):
    """Every note of the piece lies outside the roll's note range."""


class TooLongError(RepresentationError):
    """The piece needs more steps than the limit (`max_steps`)."""


class InvalidRollError(RepresentationError):
    """An array given as a roll does not have the shape `(steps, notes, 2)`."""


class RollResult(NamedTuple):
    """What `note_sequence_to_roll` returns.

    Attributes:
        roll: np.uint8 `(steps, num_notes, 2)`, play and articulate.
        beat: np.int32 `(steps,)`, position of each step in its bar.
        notes_dropped: how many notes lay outside the note range.
    """

    roll: np.ndarray
    beat: np.ndarray
    notes_dropped: int


# ----------------------------------------------------------------------------
# Bar positions
# ----------------------------------------------------------------------------


def bar_steps(time_signature=DEFAULT_TIME_SIGNATURE, steps_per_quarter=DEFAULT_STEPS_PER_QUARTER):
    """Number of steps in one bar of `time_signature`.

    Args:
        time_signature: `(numerator, denominator)`, e.g. `(6, 8)`.
        steps_per_quarter: steps per quarter note.

    Returns:
        int, at least 1: 16 for 4/4, 12 for 3/4 and 6/8 at 4 steps per quarter.
        Bars that do not fill whole steps (3/8 at 1 step per quarter) are
        rounded to the nearest whole number of steps.

    Raises:
        ValueError: for a numerator or denominator that is not positive.
    """
    numerator, denominator = time_signature
    if numerator <= 0 or denominator <= 0:
        raise ValueError(f"invalid time signature {numerator}/{denominator}")
    return max(1, int(round(numerator * 4 * steps_per_quarter / denominator)))


def bar_positions(num_steps, steps_per_quarter=DEFAULT_STEPS_PER_QUARTER,
                  time_signature=DEFAULT_TIME_SIGNATURE, offset=0):
    """Bar positions of `num_steps` steps in one time signature (for generated music).

    Args:
        num_steps: number of steps.
        steps_per_quarter: steps per quarter note.
        time_signature: `(numerator, denominator)` in force throughout.
        offset: bar position of the first step (e.g. to continue a primer).

    Returns:
        np.int32 `(num_steps,)`: `(step + offset) mod steps_per_bar`.
    """
    per_bar = bar_steps(time_signature, steps_per_quarter)
    return ((np.arange(num_steps, dtype=np.int64) + offset) % per_bar).astype(np.int32)


def pickup_signature(steps, steps_per_quarter=DEFAULT_STEPS_PER_QUARTER):
    """A time signature whose bar lasts `steps` steps (3 16th notes: 3/16), or None.

    MIDI writes a denominator as a power of two; a length that no such
    signature has (a step of a triplet grid) gives None.
    """
    import fractions

    whole_notes = fractions.Fraction(int(steps), 4 * int(steps_per_quarter))
    numerator, denominator = whole_notes.numerator, whole_notes.denominator
    if denominator & (denominator - 1):
        return None
    while denominator < 4:  # 1/2 reads better as 2/4
        numerator, denominator = numerator * 2, denominator * 2
    return (numerator, denominator) if numerator <= 255 else None


def _beat_from_segments(num_steps, starts, per_bar):
    """Bar positions from time-signature segments `(start step, steps per bar)`.

    A segment's bar line falls on its start step; a start before 0 (a pickup)
    puts the first bar line before the piece begins.
    """
    steps = np.arange(num_steps, dtype=np.int64)
    k = np.searchsorted(starts, steps, side="right") - 1
    return np.mod(steps - starts[k], per_bar[k]).astype(np.int32)


# ----------------------------------------------------------------------------
# NoteSequence -> roll
# ----------------------------------------------------------------------------


def _tempo_map(ns):
    """Breakpoints `(seconds, quarters, qpm)` of a sequence's tempo map.

    Before the first tempo event MIDI's default of 120 qpm holds; times before
    0 (pickups) extrapolate the tempo in force at 0.
    """
    times, qpms = [0.0], [DEFAULT_QPM]
    for tempo in sorted(ns.tempos, key=lambda t: t.time):
        if not (math.isfinite(tempo.qpm) and tempo.qpm > 0):
            raise InvalidTempoError(f"invalid tempo of {tempo.qpm:g} quarter notes per minute")
        if not math.isfinite(tempo.time):
            raise InvalidTempoError("a tempo change at a non-finite time")
        if tempo.time <= times[-1]:
            qpms[-1] = tempo.qpm  # the last of several at one instant wins
        else:
            times.append(tempo.time)
            qpms.append(tempo.qpm)
    times = np.asarray(times, np.float64)
    qpms = np.asarray(qpms, np.float64)
    quarters = np.concatenate([[0.0], np.cumsum(np.diff(times) * qpms[:-1] / 60.0)])
    return times, quarters, qpms


def _to_quarters(seconds, tempo_map):
    times, quarters, qpms = tempo_map
    k = np.maximum(np.searchsorted(times, seconds, side="right") - 1, 0)
    return quarters[k] + (seconds - times[k]) * qpms[k] / 60.0


def _to_steps(quarters, steps_per_quarter):
    # Round half up (not half to even) so ties land on the same side everywhere.
    return np.floor(np.asarray(quarters) * steps_per_quarter + 0.5).astype(np.int64)


def _check_range(lowest_pitch, num_notes):
    if num_notes < 1 or lowest_pitch < 0 or lowest_pitch + num_notes > NUM_MIDI_PITCHES:
        raise ValueError(
            f"note range {lowest_pitch}..{lowest_pitch + num_notes - 1} is not within "
            f"MIDI pitches 0..{NUM_MIDI_PITCHES - 1}")


_PITCH_CLASS_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def pitch_name(pitch):
    """Scientific pitch name of a MIDI pitch: 60 -> 'C4', 21 -> 'A0'."""
    return f"{_PITCH_CLASS_NAMES[pitch % 12]}{pitch // 12 - 1}"


def _range_text(lowest_pitch, num_notes):
    low, high = lowest_pitch, lowest_pitch + num_notes - 1
    return f"{low}..{high} ({pitch_name(low)}..{pitch_name(high)})"


def _too_long(steps, steps_per_quarter, max_steps):
    return TooLongError(
        f"too long: {steps:,.0f} steps at {steps_per_quarter} per quarter note, "
        f"more than the limit of {max_steps:,}")


def note_sequence_to_roll(ns, steps_per_quarter=DEFAULT_STEPS_PER_QUARTER,
                          lowest_pitch=DEFAULT_LOWEST_PITCH, num_notes=DEFAULT_NUM_NOTES,
                          *, max_steps=DEFAULT_MAX_STEPS, apply_sustain=True):
    """Quantize a NoteSequence into a state roll and its bar positions.

    The sustain pedal is applied, drum notes are dropped, all other instruments
    are merged. Note times go through the tempo map to quarter notes, then to
    the nearest step; a note shorter than one step still lasts one step. The
    roll ends with the last note. Bar positions come from the time signatures
    (4/4 until the first one; a time signature before time 0 marks a pickup).

    Args:
        ns: a `note_seq.NoteSequence` (times in seconds).
        steps_per_quarter: steps per quarter note.
        lowest_pitch: MIDI pitch of note index 0.
        num_notes: number of notes in the roll.
        max_steps: refuse pieces longer than this many steps (bounds memory).
        apply_sustain: extend notes held by the sustain pedal (control 64).

    Returns:
        `RollResult(roll, beat, notes_dropped)`.

    Raises:
        NoNotesError: no notes, or only drum notes.
        OutOfRangeError: every note is outside the note range.
        TooLongError: the piece needs more than `max_steps` steps.
        InvalidTempoError, InvalidSequenceError: unusable times or tempos.
        ValueError: for a note range outside MIDI's 0..127.
    """
    _check_range(lowest_pitch, num_notes)
    if not ns.notes:
        raise NoNotesError("no notes")
    if not any(not n.is_drum for n in ns.notes):
        raise NoNotesError("only drum notes")
    if apply_sustain and not note_seq.sequences_lib.is_quantized_sequence(ns) and any(
            c.control_number == SUSTAIN_PEDAL for c in ns.control_changes):
        ns = note_seq.apply_sustain_control_changes(ns, SUSTAIN_PEDAL)

    notes = [n for n in ns.notes if not n.is_drum]
    starts = np.fromiter((n.start_time for n in notes), np.float64, len(notes))
    ends = np.fromiter((n.end_time for n in notes), np.float64, len(notes))
    pitches = np.fromiter((n.pitch for n in notes), np.int64, len(notes))
    if not (np.isfinite(starts).all() and np.isfinite(ends).all()):
        raise InvalidSequenceError("a note has a non-finite time")
    if starts.min() < -1e-9:
        raise InvalidSequenceError(f"a note starts before time 0 (at {starts.min():g} s)")

    index = pitches - lowest_pitch
    in_range = (index >= 0) & (index < num_notes)
    notes_dropped = int(np.count_nonzero(~in_range))
    if not in_range.any():
        raise OutOfRangeError(
            f"all {len(notes)} notes are outside the note range "
            f"{_range_text(lowest_pitch, num_notes)}")

    tempo_map = _tempo_map(ns)
    index = index[in_range]
    on_quarters = _to_quarters(np.maximum(starts[in_range], 0.0), tempo_map)
    off_quarters = _to_quarters(np.maximum(ends[in_range], starts[in_range]), tempo_map)
    # Checked in floating point first so that absurd times cannot overflow the
    # integer steps or allocate a huge roll.
    if off_quarters.max() * steps_per_quarter > max_steps + 0.5:
        raise _too_long(off_quarters.max() * steps_per_quarter, steps_per_quarter, max_steps)
    on = _to_steps(on_quarters, steps_per_quarter)
    off = np.maximum(_to_steps(off_quarters, steps_per_quarter), on + 1)
    num_steps = int(off.max())
    if num_steps > max_steps:
        raise _too_long(num_steps, steps_per_quarter, max_steps)

    # Overlapping instances of one pitch sound as one: count starts minus ends.
    sounding = np.zeros((num_steps + 1, num_notes), np.int32)
    np.add.at(sounding, (on, index), 1)
    np.add.at(sounding, (off, index), -1)
    roll = np.zeros((num_steps, num_notes, 2), np.uint8)
    roll[..., 0] = np.cumsum(sounding, axis=0)[:-1] > 0
    roll[on, index, 1] = 1

    beat = _sequence_beat(ns, num_steps, steps_per_quarter, tempo_map)
    return RollResult(roll, beat, notes_dropped)


def _sequence_beat(ns, num_steps, steps_per_quarter, tempo_map):
    signatures = []
    for ts in sorted(ns.time_signatures, key=lambda t: t.time):
        if ts.numerator <= 0 or ts.denominator <= 0 or not math.isfinite(ts.time):
            continue  # a malformed meter event carries no usable bar line
        quarters = _to_quarters(np.float64(ts.time), tempo_map)
        if quarters * steps_per_quarter > num_steps:
            break  # after the last note: no step is in that bar
        step = int(_to_steps(quarters, steps_per_quarter))
        signatures.append((step, bar_steps((ts.numerator, ts.denominator), steps_per_quarter)))
    if not signatures or signatures[0][0] > 0:
        signatures.insert(0, (0, bar_steps(DEFAULT_TIME_SIGNATURE, steps_per_quarter)))
    starts = np.array([s for s, _ in signatures], np.int64)
    per_bar = np.array([b for _, b in signatures], np.int64)
    return _beat_from_segments(num_steps, starts, per_bar)


def pitch_sets_to_roll(pitch_sets, steps_per_quarter=DEFAULT_STEPS_PER_QUARTER,
                       lowest_pitch=DEFAULT_LOWEST_PITCH, num_notes=DEFAULT_NUM_NOTES,
                       *, max_steps=DEFAULT_MAX_STEPS, time_signature=DEFAULT_TIME_SIGNATURE):
    """A play-only roll from a list of steps, each a collection of MIDI pitches.

    This is the JSB Chorales format (Boulanger-Lewandowski 2012), which has no
    articulation: articulate stays 0 everywhere.

    Args:
        pitch_sets: sequence of steps; each step an iterable of MIDI pitches.
        steps_per_quarter: steps per quarter note of the data (1 for the
            quarter-note JSB file), used for the bar positions.
        lowest_pitch: MIDI pitch of note index 0.
        num_notes: number of notes in the roll.
        max_steps: refuse pieces longer than this.
        time_signature: assumed meter (the format records none).

    Returns:
        `RollResult(roll, beat, notes_dropped)`.

    Raises:
        NoNotesError, OutOfRangeError, TooLongError, InvalidSequenceError.
    """
    _check_range(lowest_pitch, num_notes)
    num_steps = len(pitch_sets)
    if num_steps > max_steps:
        raise _too_long(num_steps, steps_per_quarter, max_steps)
    step_index, pitch = [], []
    for step, pitches in enumerate(pitch_sets):
        for p in pitches:
            if not (isinstance(p, (int, float, np.integer, np.floating)) and float(p).is_integer()):
                raise InvalidSequenceError(f"step {step} has a pitch that is not a whole number: {p!r}")
            step_index.append(step)
            pitch.append(int(p))
    if not pitch:
        raise NoNotesError("no notes")
    step_index = np.asarray(step_index, np.int64)
    index = np.asarray(pitch, np.int64) - lowest_pitch
    in_range = (index >= 0) & (index < num_notes)
    if not in_range.any():
        raise OutOfRangeError(
            f"all {len(pitch)} notes are outside the note range "
            f"{_range_text(lowest_pitch, num_notes)}")
    roll = np.zeros((num_steps, num_notes, 2), np.uint8)
    roll[step_index[in_range], index[in_range], 0] = 1
    beat = bar_positions(num_steps, steps_per_quarter, time_signature)
    return RollResult(roll, beat, int(np.count_nonzero(~in_range)))


# ----------------------------------------------------------------------------
# roll -> NoteSequence
# ----------------------------------------------------------------------------


def prepend_silence(roll):
    """`roll` with one silent step before it.

    The model's input for a step is the step before it, and silence before
    the first: training windows, whole-piece scoring and the sampler all
    build their inputs from this. Works on numpy arrays and on TensorFlow
    tensors (inside tf.data and the compiled sampler), the roll's dtype kept.
    """
    if isinstance(roll, np.ndarray):
        return np.concatenate([np.zeros((1,) + roll.shape[1:], roll.dtype), roll], axis=0)
    import tensorflow as tf

    silence = tf.zeros(tf.concat([[1], tf.shape(roll)[1:]], axis=0), roll.dtype)
    return tf.concat([silence, roll], axis=0)


def play_and_onsets(roll):
    """Boolean play and onset matrices `(steps, notes)` of a roll: where notes
    sound, and where a note starts (struck, or playing after silence).

    Args:
        roll: `(steps, notes, 2)` play/articulate, or `(steps, notes)` play only.

    Returns:
        `(play, onsets)`.

    Raises:
        ValueError: for an array of another shape.
    """
    roll = np.asarray(roll)
    if roll.ndim == 3 and roll.shape[-1] == 2:
        play = roll[..., 0] != 0
        articulate = roll[..., 1] != 0
    elif roll.ndim == 2:
        play = roll != 0
        articulate = np.zeros_like(play)
    else:
        raise ValueError(f"a roll is (steps, notes, 2) or (steps, notes), got shape {roll.shape}")
    previous = np.zeros_like(play)
    previous[1:] = play[:-1]
    # Articulate without play is not a note; play after silence always is.
    onsets = play & (articulate | ~previous)
    return play, onsets


def _check_roll(roll):
    roll = np.asarray(roll)
    if roll.ndim != 3 or roll.shape[2] != 2:
        raise InvalidRollError(f"a roll has shape (steps, notes, 2), got {roll.shape}")
    return roll


def roll_to_note_sequence(roll, steps_per_quarter=DEFAULT_STEPS_PER_QUARTER,
                          lowest_pitch=DEFAULT_LOWEST_PITCH, qpm=DEFAULT_QPM,
                          time_signature=DEFAULT_TIME_SIGNATURE, pickup_steps=0):
    """Turn a state roll into a NoteSequence.

    A note starts where play turns on or where an articulate marks a re-strike,
    and lasts until play turns off or the next re-strike: a held note stays one
    note, a re-struck one becomes two. Play-only rolls (no articulation) give
    one note per run of play. Values >= 0.5 count as on, so float rolls work.

    Args:
        roll: array `(steps, notes, 2)`.
        steps_per_quarter: steps per quarter note.
        lowest_pitch: MIDI pitch of note index 0.
        qpm: tempo in quarter notes per minute.
        time_signature: `(numerator, denominator)` written to the sequence.
        pickup_steps: the roll opens with an incomplete bar of this many
            steps (an anacrusis), so its first full bar starts there: written
            as a first bar of its own length (3/16 for three 16th notes), or,
            where no time signature has that length, as a rest before the
            roll that completes the bar.

    Returns:
        A `note_seq.NoteSequence` with one tempo, its time signature(s) and
        the notes (instrument 0, program 0, velocity `DEFAULT_VELOCITY`).

    Raises:
        InvalidRollError: `roll` is not `(steps, notes, 2)`.
        ValueError: for a note range outside MIDI, or a tempo that is not positive.
    """
    roll = _check_roll(roll)
    num_steps, num_notes, _ = roll.shape
    _check_range(lowest_pitch, num_notes)
    if not qpm > 0:
        raise ValueError(f"qpm must be positive, got {qpm}")
    play = roll[..., 0] >= 0.5
    strike = play & (roll[..., 1] >= 0.5)
    seconds_per_step = 60.0 / qpm / steps_per_quarter

    ns = music_pb2.NoteSequence()
    ns.ticks_per_quarter = WRITE_TICKS_PER_QUARTER
    ns.tempos.add(time=0.0, qpm=qpm)
    shift = 0  # steps of rest before the roll
    if pickup_steps:
        pickup = pickup_signature(pickup_steps, steps_per_quarter)
        if pickup is None:
            shift = bar_steps(time_signature, steps_per_quarter) - pickup_steps
        else:
            ns.time_signatures.add(time=0.0, numerator=pickup[0], denominator=pickup[1])
    ns.time_signatures.add(time=(pickup_steps if pickup_steps and not shift else 0)
                           * seconds_per_step,
                           numerator=time_signature[0], denominator=time_signature[1])

    silent = np.zeros((1, num_notes), bool)
    before = np.concatenate([silent, play[:-1]])
    starts = play & (~before | strike)
    # A note ends where play stops or where the next note of that pitch starts.
    after_end = np.concatenate([~play[1:] | starts[1:], ~silent])
    notes = []
    for index in np.flatnonzero(play.any(axis=0)):
        begin = np.flatnonzero(starts[:, index])
        finish = np.flatnonzero(play[:, index] & after_end[:, index]) + 1
        notes.extend((b, e, index) for b, e in zip(begin, finish))
    for b, e, index in sorted(notes):
        ns.notes.add(pitch=int(lowest_pitch + index), velocity=DEFAULT_VELOCITY,
                     start_time=(b + shift) * seconds_per_step,
                     end_time=(e + shift) * seconds_per_step, instrument=0, program=0)
    ns.total_time = max((n.end_time for n in ns.notes), default=0.0)
    return ns


# ----------------------------------------------------------------------------
# MIDI files
# ----------------------------------------------------------------------------


def _midi_summary(midi):
    """Last tick of any event, last tick of any note event, melodic and drum note counts."""
    last_event = last_note = 0
    melodic = drums = 0
    for track in midi.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo" and msg.tempo <= 0:
                raise InvalidTempoError(
                    f"a tempo of {msg.tempo} microseconds per quarter note (time would stand still)")
            if msg.type in ("note_on", "note_off"):
                last_note = max(last_note, tick)
                if msg.type == "note_on" and msg.velocity > 0:
                    if msg.channel == DRUM_CHANNEL:
                        drums += 1
                    else:
                        melodic += 1
        last_event = max(last_event, tick)
    return last_event, last_note, melodic, drums


def _rescaled_midi(midi, ticks_per_quarter, clip_tick):
    """A copy of `midi` at another resolution with every event at or before `clip_tick`."""
    import mido

    scale = ticks_per_quarter / midi.ticks_per_beat
    out = mido.MidiFile(type=midi.type, ticks_per_beat=ticks_per_quarter)
    for track in midi.tracks:
        new = mido.MidiTrack()
        tick = previous = 0
        for msg in track:
            tick += msg.time
            scaled = int(round(min(tick, clip_tick) * scale))
            new.append(msg.copy(time=scaled - previous))
            previous = scaled
        out.tracks.append(new)
    buffer = io.BytesIO()
    out.save(file=buffer)
    return buffer.getvalue()


def _checked_midi_bytes(data, steps_per_quarter, max_steps):
    """Validate MIDI bytes cheaply before pretty_midi builds its tick-sized arrays.

    Returns the bytes to parse: the input, or a rewrite at a coarser resolution
    with trailing non-note events pulled in, when pretty_midi would otherwise
    allocate a huge tick table.
    """
    import mido

    if not data:
        raise MidiReadError("empty file (0 bytes)")
    if len(data) > MAX_MIDI_BYTES:
        raise MidiReadError(f"file of {len(data):,} bytes is larger than the "
                            f"{MAX_MIDI_BYTES // 2**20} MB limit for a MIDI file")
    if data[:4] != b"MThd":
        raise MidiReadError("not a MIDI file (no MThd header)")
    try:
        midi = mido.MidiFile(file=io.BytesIO(data))
    except EOFError:
        raise MidiReadError("truncated MIDI file (it ends in the middle of a chunk)") from None
    except MemoryError:
        raise  # the reader's memory bound, not the file's corruption
    except Exception as e:  # mido raises many kinds on corrupt data
        raise MidiReadError(f"corrupt MIDI file ({type(e).__name__}: {e})") from None
    ppq = midi.ticks_per_beat
    if ppq == 0:
        raise MidiReadError("resolution of 0 ticks per quarter note")
    if ppq < 0:
        raise MidiReadError("SMPTE time division (frames per second, no quarter notes); "
                            "only metrical MIDI files are supported")
    last_event, last_note, melodic, drums = _midi_summary(midi)
    if not melodic:
        raise NoNotesError("only drum notes" if drums else "no notes")
    steps = last_note / ppq * steps_per_quarter
    if steps > max_steps + 0.5:
        raise _too_long(steps, steps_per_quarter, max_steps)
    if ppq <= _MAX_TICKS_PER_QUARTER and last_event <= _MAX_TICKS:
        return data
    quarters = max(last_note / ppq, 1.0)
    new_ppq = min(ppq, _MAX_TICKS_PER_QUARTER, int(_MAX_TICKS // (quarters + 1)))
    if new_ppq < _MIN_TICKS_PER_STEP * steps_per_quarter:
        raise _too_long(steps, steps_per_quarter, max_steps)
    return _rescaled_midi(midi, new_ppq, clip_tick=last_note)


def read_midi(source, steps_per_quarter=DEFAULT_STEPS_PER_QUARTER, *, max_steps=DEFAULT_MAX_STEPS):
    """Read a MIDI file into a NoteSequence, refusing files that would blow up.

    The file is first checked with mido (header, resolution, tempi, length in
    quarter notes) so that memory and time stay bounded before note_seq and
    pretty_midi build arrays as long as the file claims.

    Args:
        source: a path, or the file's bytes.
        steps_per_quarter: the step grid the piece will be quantized to (for
            the length check).
        max_steps: refuse pieces longer than this many steps.

    Returns:
        A `note_seq.NoteSequence` (unquantized, times in seconds).

    Raises:
        MidiReadError: unreadable file (empty, not MIDI, truncated, corrupt,
            resolution 0, SMPTE timing).
        InvalidTempoError: a tempo of 0.
        NoNotesError: no notes or only drums.
        UnendedNotesError: note-ons without any note-off.
        TooLongError: longer than `max_steps`.
        OSError: the path cannot be read.
    """
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        size = os.path.getsize(source)
        if size > MAX_MIDI_BYTES:
            raise MidiReadError(f"file of {size:,} bytes is larger than the "
                                f"{MAX_MIDI_BYTES // 2**20} MB limit for a MIDI file")
        with open(source, "rb") as f:
            data = f.read()
    data = _checked_midi_bytes(data, steps_per_quarter, max_steps)
    with warnings.catch_warnings():
        # pretty_midi warns about meta events on other tracks; harmless here.
        warnings.simplefilter("ignore")
        try:
            sequence = note_seq.midi_to_note_sequence(data)
        except note_seq.MIDIConversionError as e:
            # note_seq turns everything its parser raises into this one: a
            # Ctrl-C (or the SIGTERM `biax` treats as one), a reader's time
            # limit or running out of memory included. Those are not a bad
            # file's fault; they go on as they were raised.
            cause = e.__context__
            if cause is not None and (not isinstance(cause, Exception)
                                      or isinstance(cause, MemoryError)):
                raise cause from None
            raise MidiReadError(f"unreadable MIDI ({e})") from None
    if not any(not note.is_drum for note in sequence.notes):
        # The file has note-ons (checked above), but a note lasts from its
        # note-on to a note-off (or a note-on of velocity 0): none was ended.
        raise UnendedNotesError("no note is ever ended: the file has note-ons but no "
                                "note-off (or note-on of velocity 0) after them, so no note "
                                "has a length")
    return sequence


def midi_to_roll(path, steps_per_quarter=DEFAULT_STEPS_PER_QUARTER,
                 lowest_pitch=DEFAULT_LOWEST_PITCH, num_notes=DEFAULT_NUM_NOTES,
                 *, max_steps=DEFAULT_MAX_STEPS):
    """Read a MIDI file into a state roll and bar positions.

    Args:
        path: path of a .mid file.
        steps_per_quarter: steps per quarter note.
        lowest_pitch: MIDI pitch of note index 0.
        num_notes: number of notes in the roll.
        max_steps: refuse pieces longer than this many steps.

    Returns:
        `(roll, beat)`: np.uint8 `(steps, num_notes, 2)` and np.int32 `(steps,)`.
        Notes outside the range are dropped (logged).

    Raises:
        RepresentationError: a subclass naming why the file cannot be used.
        OSError: the file cannot be read.
    """
    ns = read_midi(path, steps_per_quarter, max_steps=max_steps)
    result = note_sequence_to_roll(ns, steps_per_quarter, lowest_pitch, num_notes,
                                   max_steps=max_steps)
    if result.notes_dropped:
        log.info("%s: %d notes outside the note range dropped", path, result.notes_dropped)
    return result.roll, result.beat


def roll_to_midi(roll, path, steps_per_quarter=DEFAULT_STEPS_PER_QUARTER,
                 lowest_pitch=DEFAULT_LOWEST_PITCH, qpm=DEFAULT_QPM,
                 time_signature=DEFAULT_TIME_SIGNATURE, pickup_steps=0):
    """Write a state roll as a MIDI file, with its tempo and time signature.

    The file is written beside `path` under a temporary name, then renamed
    over `path`, so a reader never sees half a file.

    Args:
        roll: array `(steps, notes, 2)`.
        path: where to write the .mid file.
        steps_per_quarter: steps per quarter note.
        lowest_pitch: MIDI pitch of note index 0.
        qpm: tempo in quarter notes per minute.
        time_signature: `(numerator, denominator)`.
        pickup_steps: steps of an opening incomplete bar (see
            `roll_to_note_sequence`).

    Returns:
        The `note_seq.NoteSequence` that was written.

    Raises:
        InvalidRollError: `roll` is not `(steps, notes, 2)`.
        OSError: the folder cannot be written.
    """
    ns = roll_to_note_sequence(roll, steps_per_quarter, lowest_pitch, qpm, time_signature,
                               pickup_steps)
    write_atomic(path, lambda tmp: note_seq.note_sequence_to_midi_file(ns, tmp))
    return ns
