"""Music statistics of sets of pieces, on rolls, in numpy only.

Compares generated music with real music (`biax evaluate --generated DIR
--reference DIR`):

- polyphony: notes sounding per step (mean and histogram) and the share of
  silent steps;
- pitch range: lowest and highest pitch of the set, mean range of a piece;
- pitch-class histogram of note onsets, and the KL divergence between two
  sets' histograms;
- note-length histogram, in steps;
- share of notes in each piece's best-fitting major or minor scale;
- the copy check of `copies.py`.

A *note* is an onset followed by the steps it is held (see
`representation.play_and_onsets`), so play-only rolls (the JSB data) are read
the same way as full ones. Statistics of a set pool every step and every note
of its pieces (a long piece weighs more than a short one), except the mean
pitch range, which is a mean over pieces.

Example:

    from biax_keras.music import plots, statistics
    result = statistics.compare_sets("out/generated", "data/midi/bach")
    print(statistics.format_comparison(result))
    plots.plot_comparison(result["generated"], result["reference"], "stats.png")
"""

import dataclasses
import logging
import os

import numpy as np

from biax_keras.errors import UserError
from biax_keras.music.copies import QUARTERS_PER_BAR, longest_copied_run
from biax_keras.music.representation import play_and_onsets

log = logging.getLogger(__name__)
# Files are read on the full MIDI range so that no note is dropped: the
# statistics are about the music, not about what a model can represent.
STATS_LOWEST_PITCH = 0
STATS_NUM_NOTES = 128
PITCH_CLASS_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# Polyphony histogram: 0 (silence), 1, ..., 11 notes, and 12 or more.
POLYPHONY_BINS = tuple(str(n) for n in range(12)) + ("12+",)
# Note lengths in steps, as (label, shortest, longest). At 4 steps per quarter
# the bins are: 16th, 8th, dotted 8th, quarter, up to a dotted quarter, up to
# a half, up to a dotted half, up to a whole note, longer.
NOTE_LENGTH_BINS = (
    ("1", 1, 1),
    ("2", 2, 2),
    ("3", 3, 3),
    ("4", 4, 4),
    ("5-6", 5, 6),
    ("7-8", 7, 8),
    ("9-12", 9, 12),
    ("13-16", 13, 16),
    ("17+", 17, None),
)
# The natural minor scale holds the same pitch classes as its relative major,
# so with it the 24 keys would be only 12 distinct scales. The harmonic minor
# (raised 7th: the leading tone tonal music in minor uses at every cadence)
# keeps the minor keys apart.
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 11)
# Added to every bin of both histograms before the KL divergence, so that a
# bin the reference never uses gives a large but finite divergence.
KL_EPSILON = 1e-6
# Vertical intervals (mod 12) between two notes sounding at the same step.
INTERVAL_NAMES = ("P1/P8", "m2", "M2", "m3", "M3", "P4", "TT", "P5", "m6", "M6", "m7", "M7")
# Pitch classes counted from a piece's tonic (its best-fitting key's).
DEGREE_NAMES = ("1", "b2", "2", "b3", "3", "4", "#4", "5", "b6", "6", "b7", "7")

# When samples "look like the collection they learned": the bounds every
# figure of `compare_rolls`'s `against_collection` is held to. Two real halves
# of one collection differ by 0.93-1.16x in density and by KLs under 0.012.
DENSITY_RATIO = (0.8, 1.25)  # onsets and notes sounding per step, samples / collection
SILENCE_DIFFERENCE = 0.05  # silent steps, as a share of all steps
HISTOGRAM_KL = 0.05  # pitch classes in key, vertical intervals
COPY_BARS = 2.0  # the longest passage copied from the collection
# Generated files with more of their onsets off the reference's grid were
# composed at a finer resolution than the reference's.
_OFF_GRID_LIMIT = 0.25
# The two-sample test's windows: bars of 4 quarter notes.
TWO_SAMPLE_BARS = 4
# MusPy's metrics, reported beside ours (see `field_metrics`).
FIELD_METRICS = ("polyphony_rate", "empty_beat_rate", "pitch_class_entropy",
                 "scale_consistency", "groove_consistency")


def _key_names():
    return tuple(f"{n} major" for n in PITCH_CLASS_NAMES) + tuple(
        f"{n} minor" for n in PITCH_CLASS_NAMES)


KEY_NAMES = _key_names()


def _scale_masks():
    """(24, 12) 0/1: row k holds the pitch classes of KEY_NAMES[k]."""
    masks = np.zeros((24, 12), np.int64)
    for tonic in range(12):
        masks[tonic, [(tonic + d) % 12 for d in MAJOR_SCALE]] = 1
        masks[12 + tonic, [(tonic + d) % 12 for d in MINOR_SCALE]] = 1
    return masks


_SCALE_MASKS = _scale_masks()


def _note_lengths(play, onsets):
    """Length in steps of every note: its onset and the held steps after it."""
    steps, notes = play.shape
    if steps == 0 or not onsets.any():
        return np.zeros(0, np.int64)
    # One row per pitch, with a silent step appended so every note ends in its row.
    play_t = np.zeros((notes, steps + 1), bool)
    play_t[:, :steps] = play.T
    onsets_t = np.zeros((notes, steps + 1), bool)
    onsets_t[:, :steps] = onsets.T
    starts = np.flatnonzero(onsets_t)
    # A note ends where its pitch stops playing or is struck again.
    ends = np.flatnonzero(~play_t | onsets_t)
    return ends[np.searchsorted(ends, starts, side="right")] - starts


def _length_bin_counts(lengths):
    counts = []
    for _, shortest, longest in NOTE_LENGTH_BINS:
        inside = lengths >= shortest
        if longest is not None:
            inside &= lengths <= longest
        counts.append(int(inside.sum()))
    return counts


@dataclasses.dataclass
class _Counts:
    """Raw counts of one piece; a set's statistics are sums of these."""

    steps: int
    polyphony: np.ndarray  # (len(POLYPHONY_BINS),) steps per number of sounding notes
    sounding_notes: int  # sum over steps of notes sounding
    pitch_classes: np.ndarray  # (12,) onsets per pitch class
    note_lengths: np.ndarray  # (len(NOTE_LENGTH_BINS),) notes per length bin
    note_steps: int  # sum of note lengths
    lowest: int | None  # MIDI pitch, None for a piece without notes
    highest: int | None
    in_scale: int  # onsets in the best-fitting scale
    key: str | None
    in_key: np.ndarray  # (12,) onsets per pitch class counted from the piece's tonic
    intervals: np.ndarray  # (12,) pairs of notes sounding together, by interval mod 12


def piece_counts(roll, lowest_pitch):
    play, onsets = play_and_onsets(roll)
    steps, notes = play.shape
    per_step = play.sum(axis=1)
    polyphony = np.bincount(np.minimum(per_step, len(POLYPHONY_BINS) - 1),
                            minlength=len(POLYPHONY_BINS))
    pitch_class_of_note = (lowest_pitch + np.arange(notes)) % 12
    pitch_classes = np.bincount(pitch_class_of_note, weights=onsets.sum(axis=0),
                                minlength=12).astype(np.int64)
    lengths = _note_lengths(play, onsets)
    sounding = np.flatnonzero(play.any(axis=0))
    if sounding.size:
        lowest, highest = lowest_pitch + int(sounding[0]), lowest_pitch + int(sounding[-1])
    else:
        lowest = highest = None
    if pitch_classes.sum():
        fit = _SCALE_MASKS @ pitch_classes
        best = int(np.argmax(fit))  # ties go to the first key: the share is the same
        in_scale, key = int(fit[best]), KEY_NAMES[best]
        in_key = np.roll(pitch_classes, -(best % 12))  # the tonic at 0
    else:
        in_scale, key, in_key = 0, None, np.zeros(12, np.int64)
    intervals = np.zeros(12, np.int64)
    for distance in range(1, notes):  # every pair of notes at this distance, every step
        together = int(np.count_nonzero(play[:, :-distance] & play[:, distance:]))
        intervals[distance % 12] += together
    return _Counts(
        steps=steps,
        polyphony=polyphony,
        sounding_notes=int(per_step.sum()),
        pitch_classes=pitch_classes,
        note_lengths=np.asarray(_length_bin_counts(lengths), np.int64),
        note_steps=int(lengths.sum()),
        lowest=lowest,
        highest=highest,
        in_scale=in_scale,
        key=key,
        in_key=in_key,
        intervals=intervals,
    )


def _histogram(labels, counts):
    counts = [int(c) for c in counts]
    total = sum(counts)
    return {
        "bins": list(labels),
        "counts": counts,
        "shares": [c / total if total else 0.0 for c in counts],
    }


def _summarize(counts):
    steps = sum(c.steps for c in counts)
    polyphony = np.sum([c.polyphony for c in counts], axis=0)
    pitch_classes = np.sum([c.pitch_classes for c in counts], axis=0)
    note_lengths = np.sum([c.note_lengths for c in counts], axis=0)
    notes = int(pitch_classes.sum())
    in_key = np.sum([c.in_key for c in counts], axis=0)
    intervals = np.sum([c.intervals for c in counts], axis=0)
    sounding_steps = steps - int(polyphony[0])
    sounding_notes = sum(c.sounding_notes for c in counts)
    with_notes = [c for c in counts if c.lowest is not None]
    return {
        "pieces": len(counts),
        "steps": steps,
        "notes": notes,
        "onsets_per_step": notes / steps if steps else 0.0,
        "polyphony_mean": sounding_notes / steps if steps else 0.0,
        "polyphony_mean_sounding": sounding_notes / sounding_steps if sounding_steps else 0.0,
        "polyphony_histogram": _histogram(POLYPHONY_BINS, polyphony),
        "silent_share": int(polyphony[0]) / steps if steps else 0.0,
        "pitch_lowest": min(c.lowest for c in with_notes) if with_notes else None,
        "pitch_highest": max(c.highest for c in with_notes) if with_notes else None,
        "pitch_range_mean": (float(np.mean([c.highest - c.lowest for c in with_notes]))
                             if with_notes else None),
        "pitch_class_histogram": _histogram(PITCH_CLASS_NAMES, pitch_classes),
        "pitch_class_in_key_histogram": _histogram(DEGREE_NAMES, in_key),
        "interval_histogram": _histogram(INTERVAL_NAMES, intervals),
        "note_length_histogram": _histogram([b[0] for b in NOTE_LENGTH_BINS], note_lengths),
        "note_length_mean": sum(c.note_steps for c in counts) / notes if notes else 0.0,
        "in_scale_share": sum(c.in_scale for c in counts) / notes if notes else 0.0,
    }


def piece_statistics(roll, lowest_pitch=STATS_LOWEST_PITCH):
    """Music statistics of one piece.

    Args:
        roll: `(steps, notes, 2)` play/articulate roll, or `(steps, notes)` play
            only; any integer or bool dtype.
        lowest_pitch: MIDI pitch of the roll's note 0.

    Returns:
        The dict of `set_statistics` for a set of this one piece, plus `key`:
        the best-fitting key (e.g. "A minor"), None for a piece without notes.

    Raises:
        ValueError: for an array that is not a roll.
    """
    counts = piece_counts(roll, lowest_pitch)
    stats = _summarize([counts])
    stats["key"] = counts.key
    return stats


def set_statistics(rolls, lowest_pitch=STATS_LOWEST_PITCH):
    """Music statistics of a set of pieces, pooled over all their steps and notes.

    Args:
        rolls: iterable of rolls (see `piece_statistics`), all with the same
            `lowest_pitch`.
        lowest_pitch: MIDI pitch of the rolls' note 0.

    Returns:
        A JSON-able dict:
        - `pieces`, `steps`, `notes` (onsets); `onsets_per_step`;
        - `polyphony_mean`: notes sounding per step, over all steps;
          `polyphony_mean_sounding`: the same over steps that are not silent;
        - `polyphony_histogram`: `{"bins", "counts", "shares"}` of steps by
          number of sounding notes (POLYPHONY_BINS);
        - `silent_share`: share of steps where nothing sounds;
        - `pitch_lowest`, `pitch_highest`: MIDI pitches (None without notes);
          `pitch_range_mean`: mean over pieces of highest minus lowest, in
          semitones;
        - `pitch_class_histogram`: of note onsets, bins C..B;
          `pitch_class_in_key_histogram`: the same with every piece turned
          to its best-fitting key (bins: degrees from the tonic);
        - `interval_histogram`: pairs of notes sounding at the same step, by
          their interval mod 12 (bins INTERVAL_NAMES);
        - `note_length_histogram`: of notes by length in steps
          (NOTE_LENGTH_BINS); `note_length_mean` in steps;
        - `in_scale_share`: share of notes that lie in their piece's
          best-fitting major or harmonic minor scale.

    Raises:
        ValueError: for an array that is not a roll.
    """
    return _summarize([piece_counts(roll, lowest_pitch) for roll in rolls])


def histogram_kl(p, q, epsilon=KL_EPSILON):
    """KL(p || q) in nats of two histograms, smoothed so it stays finite.

    Both histograms are normalized, `epsilon` is added to every bin and they
    are normalized again, so a bin empty in `q` but not in `p` costs about
    `p_i * log(p_i / epsilon)` instead of infinity.

    Args:
        p, q: counts or shares, same length, not negative.
        epsilon: smoothing added to every normalized bin.

    Returns:
        A float >= 0; 0 for identical histograms.

    Raises:
        ValueError: for histograms of different lengths or negative values.
    """
    p = np.asarray(p, np.float64)
    q = np.asarray(q, np.float64)
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(f"histograms must be 1-D and of the same length, got {p.shape} and {q.shape}")
    if (p < 0).any() or (q < 0).any():
        raise ValueError("histograms cannot hold negative values")

    def smooth(h):
        total = h.sum()
        h = h / total if total > 0 else np.zeros_like(h)
        h = h + epsilon
        return h / h.sum()

    p, q = smooth(p), smooth(q)
    return max(0.0, float(np.sum(p * np.log(p / q))))


def pitch_class_kl(p, q, epsilon=KL_EPSILON):
    """KL(p || q) of two 12-bin pitch-class histograms (see `histogram_kl`).

    Args:
        p: the generated set's histogram (counts or shares).
        q: the reference set's histogram.
        epsilon: smoothing added to every normalized bin.

    Returns:
        A float >= 0, in nats.

    Raises:
        ValueError: unless both have 12 bins.
    """
    if len(p) != 12 or len(q) != 12:
        raise ValueError(f"pitch-class histograms have 12 bins, got {len(p)} and {len(q)}")
    return histogram_kl(p, q, epsilon)


def read_set(path, steps_per_quarter=4):
    """Reads every MIDI file under `path` (recursively) as a roll of all 128 pitches.

    Args:
        path: a folder (searched recursively for .mid/.midi/.kar) or one MIDI file.
        steps_per_quarter: time resolution.

    Returns:
        `(rolls, names, skipped)`: the rolls (`lowest_pitch` 0, 128 notes),
        the path of each, and `[{"path", "reason"}]` for files that could not
        be used.

    Raises:
        UserError: if `path` does not exist or holds no usable MIDI file.
    """
    # Imported here so the statistics work on rolls without the MIDI stack.
    from biax_keras.music.midi_files import midi_files, read_rolls

    if not os.path.exists(path):
        raise UserError(f"{path} does not exist; give a folder of MIDI files")
    files = midi_files(path)
    if not files:
        raise UserError(f"no MIDI files (.mid, .midi, .kar) in {path}")
    pieces, skipped = read_rolls(files, steps_per_quarter, STATS_LOWEST_PITCH, STATS_NUM_NOTES)
    if not pieces:
        first = skipped[0]
        raise UserError(f"no readable MIDI files in {path} ({len(skipped)} unreadable, "
                        f"e.g. {first['path']}: {first['reason']})")
    return [roll for _, roll, _ in pieces], [name for name, _, _ in pieces], skipped


def compare_rolls(generated, reference, steps_per_quarter=4, lowest_pitch=STATS_LOWEST_PITCH,
                  generated_names=None, reference_names=None):
    """Statistics of two sets of rolls and how they compare.

    Args:
        generated, reference: lists of rolls with the same `lowest_pitch`.
        steps_per_quarter: the rolls' resolution (for bar lengths).
        lowest_pitch: MIDI pitch of the rolls' note 0.
        generated_names, reference_names: names to report pieces by (default:
            their index).

    Returns:
        A JSON-able dict: `steps_per_quarter`, `generated` and `reference`
        (`set_statistics` of each) and `comparison`: `pitch_class_kl`,
        `note_length_kl`, `polyphony_kl` (KL(generated || reference) in nats,
        see `histogram_kl`) and `copy`: the longest copied run (`steps`,
        `bars` of 4 quarters, the two pieces and start steps,
        `transposition`) and `per_piece_steps` for every generated piece.
    """
    generated_names = generated_names or [str(i) for i in range(len(generated))]
    reference_names = reference_names or [str(i) for i in range(len(reference))]
    stats = {
        "generated": set_statistics(generated, lowest_pitch),
        "reference": set_statistics(reference, lowest_pitch),
    }
    for side, rolls in (("generated", generated), ("reference", reference)):
        stats[side]["muspy"] = field_metrics(rolls, steps_per_quarter, lowest_pitch)
    comparison = {}
    for key, histogram in (("pitch_class_kl", "pitch_class_histogram"),
                           ("pitch_class_in_key_kl", "pitch_class_in_key_histogram"),
                           ("interval_kl", "interval_histogram"),
                           ("note_length_kl", "note_length_histogram"),
                           ("polyphony_kl", "polyphony_histogram")):
        comparison[key] = histogram_kl(stats["generated"][histogram]["counts"],
                                       stats["reference"][histogram]["counts"])
    match = longest_copied_run(generated, reference)
    steps_per_bar = steps_per_quarter * QUARTERS_PER_BAR
    copied = match.length > 0
    comparison["copy"] = {
        "steps": match.length,
        "bars": match.length / steps_per_bar,
        "generated_piece": generated_names[match.generated_index] if copied else None,
        "reference_piece": reference_names[match.reference_index] if copied else None,
        "generated_start": match.generated_start,
        "reference_start": match.reference_start,
        "transposition": match.transposition,
        "per_piece_steps": list(match.per_piece),
    }
    from biax_keras.music.two_sample import two_sample_test

    try:
        comparison["two_sample"] = two_sample_test(
            generated, reference, window_steps=steps_per_bar * TWO_SAMPLE_BARS,
            lowest_pitch=lowest_pitch)
    except UserError as e:  # sets too small to hold pieces out: said, not scored
        comparison["two_sample"] = {"accuracy": None, "reason": str(e),
                                    "window_steps": steps_per_bar * TWO_SAMPLE_BARS}
    comparison["against_collection"] = against_collection(stats["generated"],
                                                          stats["reference"], comparison)
    return {"steps_per_quarter": steps_per_quarter, **stats, "comparison": comparison}


def field_metrics(rolls, steps_per_quarter, lowest_pitch=STATS_LOWEST_PITCH):
    """MusPy's metrics of a set: the means over its pieces.

    The field's own definitions (Dong et al. 2020), computed by MusPy on
    each piece's play channel: `polyphony_rate` (share of steps where more
    than two pitches sound), `empty_beat_rate`, `pitch_class_entropy` (bits),
    `scale_consistency` and `groove_consistency` (over 4/4 bars). A piece
    where a metric is undefined (no notes) does not count for it.

    Returns:
        `{name: mean or None}`.
    """
    import warnings

    import muspy

    per_piece = {name: [] for name in FIELD_METRICS}
    bar = steps_per_quarter * QUARTERS_PER_BAR
    for roll in rolls:
        play, _ = play_and_onsets(roll)
        full = np.zeros((len(play), 128), bool)
        full[:, lowest_pitch:lowest_pitch + play.shape[1]] = play[:, :128 - lowest_pitch]
        music = muspy.from_pianoroll_representation(full, resolution=steps_per_quarter,
                                                    encode_velocity=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty piece: nan, left out below
            values = {"polyphony_rate": muspy.polyphony_rate(music),
                      "empty_beat_rate": muspy.empty_beat_rate(music),
                      "pitch_class_entropy": muspy.pitch_class_entropy(music),
                      "scale_consistency": muspy.scale_consistency(music),
                      "groove_consistency": muspy.groove_consistency(music, bar)}
        for name, value in values.items():
            if value is not None and np.isfinite(value):
                per_piece[name].append(float(value))
    return {name: float(np.mean(v)) if v else None for name, v in per_piece.items()}


def against_collection(generated, reference, comparison):
    """Each figure by which samples should look like their collection, with its bound.

    Returns:
        `{name: {"value", "bound", "within"}}` for the onsets and notes
        sounding per step (ratio samples / collection), the silent steps
        (difference of shares), the KLs of the pitch classes in key and of
        the vertical intervals, and the longest copy (bars); `"all"`: whether
        every one is within its bound.
    """
    def ratio(key):
        return generated[key] / reference[key] if reference[key] else float("inf")

    figures = {
        "onsets_per_step_ratio": (ratio("onsets_per_step"), DENSITY_RATIO),
        "notes_sounding_ratio": (ratio("polyphony_mean"), DENSITY_RATIO),
        "silent_share_difference": (abs(generated["silent_share"] - reference["silent_share"]),
                                    (0.0, SILENCE_DIFFERENCE)),
        "pitch_class_in_key_kl": (comparison["pitch_class_in_key_kl"], (0.0, HISTOGRAM_KL)),
        "interval_kl": (comparison["interval_kl"], (0.0, HISTOGRAM_KL)),
        "copy_bars": (comparison["copy"]["bars"], (0.0, COPY_BARS)),
    }
    result = {}
    for name, (value, (low, high)) in figures.items():
        within = low <= value <= high if name.endswith("ratio") else value <= high
        if name.endswith("_kl"):
            within = value < high
        result[name] = {"value": value, "bound": [low, high], "within": bool(within)}
    result["all"] = all(f["within"] for f in result.values())
    return result


def compare_sets(generated_dir, reference, steps_per_quarter=None, reference_split=None):
    """Reads generated MIDI and a reference collection and compares their statistics.

    Args:
        generated_dir: folder (searched recursively) or file of generated MIDI.
        reference: the same for the real music to compare with, or a
            JSB-format .json/.pickle (one split of it, read at the resolution
            its name states).
        steps_per_quarter: time resolution both are read at (default: a JSB
            file's own, else 4).
        reference_split: the split of a JSB file (default valid).

    Returns:
        The dict of `compare_rolls`, with `path` and `skipped`
        (`[{"path", "reason"}]`) added to each set's statistics.

    Raises:
        UserError: a set that is missing, empty or unreadable; a resolution
            that is not the reference's; generated files composed at a finer
            resolution than the reference's.
    """
    from biax_keras.music import jsb
    from biax_keras.music.midi_files import off_grid_share

    if jsb.is_jsb_file(reference):
        stated = jsb.steps_per_quarter_of_name(reference)
        if steps_per_quarter is None:
            if stated is None:
                raise UserError(f"{reference} does not say its time resolution; give it with "
                                f"--steps-per-quarter (1 for quarter notes, 4 for 16th notes)")
            steps_per_quarter = stated
        elif stated is not None and stated != steps_per_quarter:
            raise UserError(f"{reference} is at {_resolution_words(stated)}, not at "
                            f"--steps-per-quarter {steps_per_quarter}; leave the flag out")
        split = reference_split or "valid"
        pieces, reference_skipped = jsb.rolls(reference, split, steps_per_quarter,
                                              STATS_LOWEST_PITCH, STATS_NUM_NOTES)
        if not pieces:
            raise UserError(f"no piece of the {split} split of {reference} could be read")
        reference_rolls = [roll for _, roll, _ in pieces]
        reference_names = [name for name, _, _ in pieces]
    else:
        if reference_split is not None:
            raise UserError("--reference-split is for a JSB-format .json/.pickle reference; "
                            "a folder of MIDI files is compared whole")
        steps_per_quarter = steps_per_quarter or 4
        reference_rolls, reference_names, reference_skipped = read_set(reference, steps_per_quarter)
    generated, generated_names, generated_skipped = read_set(generated_dir, steps_per_quarter)
    off_grid = float(np.mean([off_grid_share(path, steps_per_quarter)
                              for path in generated_names]))
    if off_grid > _OFF_GRID_LIMIT:
        raise UserError(f"{off_grid:.0%} of the generated notes start between the steps of the "
                        f"reference's grid ({_resolution_words(steps_per_quarter)}): the "
                        f"generated files are at a finer resolution; compare them with a "
                        f"reference at theirs")
    result = compare_rolls(generated, reference_rolls, steps_per_quarter,
                           generated_names=generated_names, reference_names=reference_names)
    result["generated"].update(path=str(generated_dir), skipped=generated_skipped)
    result["reference"].update(
        path=str(reference), skipped=reference_skipped,
        split=(reference_split or "valid") if jsb.is_jsb_file(reference) else None)
    return result


def _resolution_words(steps_per_quarter):
    return {1: "quarter notes", 2: "eighth notes", 4: "16th notes"}.get(
        steps_per_quarter, f"{steps_per_quarter} steps per quarter note")


def _fmt(value, spec=".3f"):
    if value is None:
        return "-"
    return format(value, spec) if isinstance(value, float) else str(value)


def format_comparison(result):
    """A human summary of `compare_rolls` / `compare_sets`, one fact a line."""
    a, b = result["generated"], result["reference"]
    rows = [
        ("pieces", "pieces", "d"),
        ("steps", "steps", "d"),
        ("notes", "notes", "d"),
        ("note onsets per step", "onsets_per_step", ".3f"),
        ("notes sounding per step", "polyphony_mean", ".2f"),
        ("  (non-silent steps)", "polyphony_mean_sounding", ".2f"),
        ("silent steps", "silent_share", ".1%"),
        ("lowest pitch", "pitch_lowest", "d"),
        ("highest pitch", "pitch_highest", "d"),
        ("mean range (semitones)", "pitch_range_mean", ".1f"),
        ("mean note length (steps)", "note_length_mean", ".2f"),
        ("notes in key", "in_scale_share", ".1%"),
    ]
    rows += [(f"muspy {name.replace('_', ' ')}", ("muspy", name), ".3f")
             for name in FIELD_METRICS]
    lines = [f"{'':26} {'generated':>12} {'reference':>12}"]
    def value(stats, key):
        return stats.get(key[0], {}).get(key[1]) if isinstance(key, tuple) else stats[key]

    for label, key, spec in rows:
        lines.append(f"{label:26} {_fmt(value(a, key), spec):>12} {_fmt(value(b, key), spec):>12}")
    for label, key in (("pitch classes", "pitch_class_histogram"),
                       ("pitch classes in key", "pitch_class_in_key_histogram"),
                       ("vertical intervals", "interval_histogram"),
                       ("note lengths", "note_length_histogram"),
                       ("polyphony", "polyphony_histogram")):
        unit = {"polyphony_histogram": "steps", "interval_histogram": "pairs"}.get(key, "notes")
        lines.append(f"{label} (share of {unit}):")
        for name, p, q in zip(a[key]["bins"], a[key]["shares"], b[key]["shares"]):
            lines.append(f"  {name:24} {p:>12.1%} {q:>12.1%}")
    c = result["comparison"]
    lines.append(f"KL(generated || reference): pitch classes {c['pitch_class_kl']:.4f}, "
                 f"in key {c['pitch_class_in_key_kl']:.4f}, intervals {c['interval_kl']:.4f}, "
                 f"note lengths {c['note_length_kl']:.4f}, polyphony {c['polyphony_kl']:.4f} nats")
    copy = c["copy"]
    if copy["steps"]:
        per_piece = sorted(copy["per_piece_steps"])
        lines.append(
            f"longest copied run: {copy['steps']} steps ({copy['bars']:.2f} bars) of "
            f"{copy['generated_piece']} from step {copy['generated_start']}, found in "
            f"{copy['reference_piece']} from step {copy['reference_start']}, "
            f"transposed {copy['transposition']:+d} semitones; median over generated "
            f"pieces {per_piece[len(per_piece) // 2]} steps")
    else:
        lines.append("longest copied run: none (no sounding step occurs in the reference set)")
    test = c.get("two_sample")
    if test and test["accuracy"] is not None:
        lines.append(f"two-sample test: a classifier tells windows of generated music from the "
                     f"collection's with held-out accuracy {test['accuracy']:.3f} "
                     f"(0.5: indistinguishable; {test['windows']} windows of {test['window_steps']} "
                     f"steps)")
    elif test:
        lines.append(f"two-sample test: not scored ({test['reason']})")
    within = c["against_collection"]
    lines.append("against the collection: " + ", ".join(
        f"{name} {figure['value']:.3f} {'ok' if figure['within'] else 'OUT'}"
        for name, figure in within.items() if name != "all"))
    for side, stats in (("generated", a), ("reference", b)):
        for s in stats.get("skipped", []):
            lines.append(f"skipped ({side}) {s['path']}: {s['reason']}")
    return "\n".join(lines)
