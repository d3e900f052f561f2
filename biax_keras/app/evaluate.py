"""Frame NLL and accuracy of a model on whole pieces.

The measures are those of Boulanger-Lewandowski et al. (2012), so figures can
be set beside the published ones:

- frame NLL: negative log-likelihood in nats of each step given all the steps
  before it, summed over notes and averaged over every step of every piece.
  The first step of a piece is predicted from silence. Whole pieces are scored
  with the recurrent state carried from their first step, never cut into
  training windows.
- frame accuracy: TP / (TP + FP + FN) over all steps and notes, a note counted
  as predicted to play when P(play) > 0.5. As with the NADE family, each
  note's P(play) is conditioned on the true notes below it (the model's chain
  rule), exactly the probabilities the NLL is made of.

A score is only given where it means something: data at another time
resolution than the model's, with notes outside its range, or without the
articulation a model learned (every note held, never struck, which the model
never saw) is refused with the reason, never scored.
"""

import contextlib
import dataclasses
import logging
import os
import tempfile

import numpy as np

from biax_keras.music import jsb
from biax_keras.music.jsb import steps_per_quarter_of_name as jsb_steps_per_quarter
from biax_keras.errors import UserError

log = logging.getLogger(__name__)

# Pieces are scored in batches padded at the end: the time axis is causal, so
# padding after a piece cannot change the probabilities of its own steps.
_BATCH_SIZE = 16
# ... and at most this many padded note-steps per batch: a whole-piece pass
# holds about 5 kB per note-step on CPU, so 16 pieces of 3,500 steps on 88
# keys would need over 20 GB; this keeps a batch near 1.5 GB.
_NOTE_STEPS_PER_BATCH = 300_000
# MIDI files are read on every MIDI pitch, so that notes outside the model's
# range are counted rather than lost.
MIDI_LOWEST, MIDI_NOTES = 0, 128
# A JSB-format file records no time resolution; the published files say it in
# their names (jsb-chorales-quarter.json, jsb-chorales-16th.json).


@dataclasses.dataclass
class Scores:
    """Totals over a set of pieces; the reported figures are ratios of them."""

    play_nll: float = 0.0
    articulate_nll: float = 0.0
    steps: int = 0
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    pieces: int = 0

    def add(self, target, probabilities, play_only):
        """Adds one piece: `target` and `probabilities` are `(steps, N, 2)` numpy."""
        from biax_keras.nn.model import frame_losses

        # The training loss's own maths, in float64: sums over whole pieces.
        play, articulate = frame_losses(target[None], probabilities[None].astype(np.float64),
                                        play_only)
        self.play_nll += float(np.sum(play))
        self.articulate_nll += float(np.sum(articulate))
        predicted = probabilities[..., 0] > 0.5
        true = target[..., 0] > 0
        self.true_positives += int(np.sum(predicted & true))
        self.false_positives += int(np.sum(predicted & ~true))
        self.false_negatives += int(np.sum(~predicted & true))
        self.steps += int(target.shape[0])
        self.pieces += 1

    @classmethod
    def total(cls, parts):
        """The totals of several `Scores` (of disjoint pieces) together."""
        whole = cls()
        for part in parts:
            for field in dataclasses.fields(cls):
                setattr(whole, field.name, getattr(whole, field.name) + getattr(part, field.name))
        return whole

    def as_dict(self):
        steps = max(self.steps, 1)
        events = self.true_positives + self.false_positives + self.false_negatives
        return {
            "frame_nll": (self.play_nll + self.articulate_nll) / steps,
            "play_nll": self.play_nll / steps,
            "articulate_nll": self.articulate_nll / steps,
            "accuracy": self.true_positives / events if events else 0.0,
            "pieces": self.pieces,
            "steps": self.steps,
        }


def previous_steps(roll):
    """The model's `roll` input for a piece: silence, then every step but the last."""
    from biax_keras.music.representation import prepend_silence

    return prepend_silence(roll)[:-1]


def score_pieces(model, pieces, play_only=False, batch_size=_BATCH_SIZE,
                 note_steps_per_batch=_NOTE_STEPS_PER_BATCH, each=False, style=None):
    """Scores whole pieces with a Keras `BiaxialModel`.

    Args:
        model: a `BiaxialModel` (or any Keras model taking its inputs dict).
        pieces: iterable of `(roll, beat)` in the model's note range.
        play_only: score play alone.
        batch_size: at most this many pieces are scored together (padded at
            the end to the longest).
        note_steps_per_batch: and fewer when their padded steps times notes
            would exceed this (a piece longer than that goes alone).
        each: also return every piece's own `Scores`.
        style: `(S,)` style weights every piece is scored in (a style model's).

    Returns:
        `Scores` over all pieces; with `each`, `(Scores over all, [Scores of
        each piece, in the order given])`.
    """
    pieces = list(pieces)
    alone = [Scores() for _ in pieces]
    # Longest first, so that each batch's size is set by its first piece.
    order = sorted(range(len(pieces)), key=lambda i: len(pieces[i][0]), reverse=True)
    start = 0
    while start < len(order):
        longest, notes = pieces[order[start]][0].shape[:2]
        size = max(1, min(batch_size, note_steps_per_batch // max(1, longest * notes)))
        indices = order[start : start + size]
        batch = [pieces[i] for i in indices]
        start += size
        rolls = np.zeros((len(batch), longest, notes, 2), np.float32)
        beats = np.zeros((len(batch), longest), np.int32)
        for i, (roll, beat) in enumerate(batch):
            rolls[i, : len(roll)] = roll
            beats[i, : len(roll)] = beat
        inputs = {
            "roll": np.stack([previous_steps(r) for r in rolls]),
            "beat": beats,
            "target": rolls,
        }
        if style is not None and len(style):
            inputs["style"] = np.broadcast_to(np.asarray(style, np.float32),
                                              (len(batch), len(style))).copy()
        probabilities = np.asarray(model(inputs, training=False))
        for i, (roll, _) in enumerate(batch):
            alone[indices[i]].add(roll, probabilities[i, : len(roll)], play_only)
    scores = Scores.total(alone)
    return (scores, alone) if each else scores


def _fit_range(roll, data_lowest, model_lowest, model_notes):
    """Re-indexes a roll from the data's note range to the model's.

    Returns:
        `(roll_in_model_range, notes_outside)`: the second counts note-ons
        (or sounding steps, for play-only data) that fall outside.
    """
    steps, notes, _ = roll.shape
    out = np.zeros((steps, model_notes, 2), roll.dtype)
    offset = data_lowest - model_lowest
    lo, hi = max(0, -offset), min(notes, model_notes - offset)
    if hi > lo:
        out[:, lo + offset : hi + offset] = roll[:, lo:hi]
    outside = roll.copy()
    if hi > lo:
        outside[:, lo:hi] = 0
    onsets = outside[..., 1].sum()
    return out, int(onsets if onsets else outside[..., 0].sum())


@contextlib.contextmanager
def _quiet(logger):
    """Keeps `logger`'s progress lines out of an evaluation's output."""
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _source_kind(source):
    """"prepared", "jsb" or "midi" for a --data path that exists."""
    from biax_keras.data import records
    from biax_keras.music.midi_files import midi_files

    if os.path.isdir(source):
        if records.is_prepared(source):
            return "prepared"
        if midi_files(source):
            return "midi"
        raise UserError(f"{source} is neither a prepared dataset (no meta.json) nor a folder "
                        f"of MIDI files (.mid, .midi, .kar)")
    if jsb.is_jsb_file(source):
        return "jsb"
    if midi_files(source):
        return "midi"
    raise UserError(f"{source} is not a prepared folder, a JSB .json/.pickle file or a MIDI "
                    f"file (.mid, .midi, .kar)")


def _read_midi(source, model_config):
    """Every MIDI file of `source` (a file or a folder) at the model's resolution.

    Returns:
        `(pieces, meta, skipped)`: pieces as `(path, roll, beat)` on all 128 pitches.
    """
    from biax_keras.music.midi_files import midi_files, read_rolls

    pieces, skipped = read_rolls(midi_files(source), model_config.steps_per_quarter,
                                 MIDI_LOWEST, MIDI_NOTES)
    if not pieces:
        first = f" (e.g. {skipped[0]['path']}: {skipped[0]['reason']})" if skipped else ""
        raise UserError(f"no MIDI file in {source} could be read{first}")
    meta = {"steps_per_quarter": model_config.steps_per_quarter, "lowest_pitch": MIDI_LOWEST,
            "num_notes": MIDI_NOTES, "play_only": False}
    return pieces, meta, skipped


def _split_counts(source):
    """Pieces per split of a prepared folder, from its report (empty if unknown)."""
    import json

    try:
        with open(os.path.join(source, "report.json")) as f:
            return {k: int(v) for k, v in json.load(f)["pieces"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _read_source(source, split, model_config, steps_per_quarter=None):
    """Pieces of `split` from a prepared folder or a JSB JSON/pickle file, or MIDI files.

    Returns:
        `(pieces, meta, skipped, split)`: pieces as `(name, roll, beat)` in
        the data's own range (the name is the MIDI file's path, or the
        piece's `source:split/index`); meta with the data's steps_per_quarter,
        lowest_pitch, num_notes and play_only; the MIDI files that could not
        be read; the split scored (None for MIDI files, scored whole).
    """
    from biax_keras import data
    from biax_keras.data import preparation, sources

    if not os.path.exists(source):
        raise UserError(f"{source} does not exist; give a prepared folder, a JSB .json/.pickle "
                        f"file, or a MIDI file or folder")
    kind, resolution = _checked_source(source, split, steps_per_quarter, model_config)
    if kind == "midi":
        return _read_midi(source, model_config) + (None,)
    split = split or "valid"
    if kind == "prepared":
        return list(data.read_pieces(source, split)), data.load_meta(source), [], split
    # A JSB-format file is prepared on the whole piano (so that notes outside
    # the model's range are counted, not silently dropped) in a scratch folder.
    with tempfile.TemporaryDirectory(prefix="biax-evaluate-") as scratch:
        out = os.path.join(scratch, "prepared")
        with _quiet(preparation.log):
            report = data.prepare(
                source,
                out,
                steps_per_quarter=resolution,
                lowest_pitch=sources.JSB_LOWEST_PITCH,
                num_notes=sources.JSB_NUM_NOTES,
            )
        meta = dict(data.load_meta(out), notes_dropped=int(report.get("notes_dropped", 0)),
                    split_counts=report.get("pieces", {}))
        return list(data.read_pieces(out, split)), meta, [], split


def _resolution_mismatch(source, data_resolution, config):
    def words(n):
        return {1: "quarter notes", 2: "eighth notes", 4: "16th notes"}.get(n, f"{n} steps per quarter note")

    return (f"{source} is at {words(data_resolution)} and the model at "
            f"{words(config.steps_per_quarter)}; its frame NLL would mean nothing. Score data at "
            f"{config.steps_per_quarter} steps per quarter note (prepared with --steps-per-quarter "
            f"{config.steps_per_quarter}, or MIDI files), or a model trained at this resolution")


def _check_scorable(source, data_resolution, data_play_only, config):
    """Refuses data whose frame NLL under this model would mean nothing.

    Raises:
        UserError: another time resolution than the model's, or data without
            articulation for a model that learned it.
    """
    if data_resolution != config.steps_per_quarter:
        raise UserError(_resolution_mismatch(source, data_resolution, config))
    if data_play_only and not config.play_only:
        raise UserError(
            f"{source} has no articulation (every note held, never struck) and the model "
            f"learned articulation, so it was never shown such input and its frame NLL would "
            f"mean nothing; score it with a play-only model (e.g. saved_models/jsb_chorales), "
            f"or score this model on data with articulation (MIDI files, or a folder prepared "
            f"from them)")


def _jsb_resolution(source, steps_per_quarter, config, warn=True):
    """The resolution a JSB-format file is read at: given, from its name, or
    (for a play-only model, which learned from files of this format) the model's."""
    resolution = steps_per_quarter or jsb_steps_per_quarter(source)
    if resolution is None and config.play_only:
        # A play-only model learned from files of this very format, so the
        # file is read at the model's resolution (a benchmark's test split
        # scored by the model trained on its train split); a name or a flag
        # stating another resolution is still refused.
        resolution = config.steps_per_quarter
        if warn:
            log.warning("note: %s does not say its time resolution: read at the model's, %d "
                        "steps per quarter note (--steps-per-quarter N if it is at another)",
                        source, resolution)
    if resolution is None:
        raise UserError(f"{source} does not say its time resolution; give it with "
                        f"--steps-per-quarter (1 for quarter notes, 4 for 16th notes)")
    return resolution


def _checked_source(source, split, steps_per_quarter, config, warn=True):
    """What `source` is and its time resolution, refused where it cannot be scored.

    Returns:
        `(kind, resolution)`: kind "prepared", "jsb" or "midi" (see `_source_kind`).

    Raises:
        UserError: a flag that does not apply to the source, another time
            resolution than the model's, or data without articulation for a
            model that learned it.
    """
    kind = _source_kind(source)
    if kind == "midi":
        if split is not None:
            raise UserError(f"--split applies to prepared folders and JSB files; the MIDI in "
                            f"{source} is scored whole: leave --split out")
        return kind, config.steps_per_quarter
    if kind == "prepared":
        from biax_keras import data

        if steps_per_quarter is not None:
            raise UserError(f"{source} is prepared at its own resolution; leave "
                            f"--steps-per-quarter out (it is for JSB .json/.pickle files)")
        meta = data.load_meta(source)
        resolution = int(meta["steps_per_quarter"])
        _check_scorable(source, resolution, bool(meta.get("play_only")), config)
        return kind, resolution
    resolution = _jsb_resolution(source, steps_per_quarter, config, warn)
    _check_scorable(source, resolution, True, config)
    return kind, resolution


def check_request(model_path, source, split=None, steps_per_quarter=None, style=None):
    """What `evaluate_model` refuses that the model's config and the data's
    description tell, for the command line to say before TensorFlow starts.

    Raises:
        UserError: see `_checked_source` and `scoring_style`.
    """
    import biax_keras

    config = biax_keras.model_config(model_path)
    _checked_source(source, split, steps_per_quarter, config, warn=False)
    scoring_style(config, source, style)


def _plain(name):
    return name.replace("-", "_").replace(".", "_")


def scoring_style(config, source, style=None):
    """The style weights a style model scores `source` in (None for another model).

    `style` given wins; otherwise the data's own style: a prepared folder's
    (meta.json's `style`), or the name of a JSB file or MIDI folder, where
    it names one of the model's styles (`piano-midi-de.json` is
    `piano_midi_de`: `-`, `_` and `.` count alike).

    Raises:
        UserError: a style for a model without styles, a style the model does
            not know, or data whose style the model cannot tell.
    """
    from biax_keras.generation.styles import style_weights

    if style is not None or not config.styles:
        return None if style is None else style_weights(config, style)
    if os.path.isdir(source) and os.path.isfile(os.path.join(source, "meta.json")):
        from biax_keras import data

        own = data.dataset_style(source)
    else:
        from biax_keras.style_names import style_name_of

        own = style_name_of(source)
    for name in config.styles:
        if _plain(name) == _plain(own):
            return style_weights(config, name)
    raise UserError(f"{source} is in none of this model's styles by its name ({own}); give "
                    f"--style NAME, one of {', '.join(config.styles)}")


def _empty_split_hint(source, split, meta):
    counts = meta.get("split_counts") or (_split_counts(source) if os.path.isdir(source) else {})
    others = [name for name, n in counts.items() if n and name != split]
    if others:
        return f"its pieces are in --split {' or --split '.join(others)}"
    return "prepare it with more pieces"


def evaluate_model(model_path, source, split=None, steps_per_quarter=None, per_piece=False,
                   style=None):
    """Frame NLL, its parts and frame accuracy of a model on a dataset split.

    Args:
        model_path: a `.keras` file, a run folder or an exported SavedModel.
        source: a prepared folder; a JSB-format JSON/pickle file (at the
            resolution `steps_per_quarter` or its name states, on the model's
            note range); or a MIDI file or folder of them (read at the
            model's resolution, every file scored whole).
        split: `train`, `valid` or `test` of a prepared folder or JSB file
            (default `valid`); must be None for MIDI.
        steps_per_quarter: the time resolution of a JSB-format file.
        per_piece: also score every piece on its own.
        style: for a style model, the style (or blend) to score in; None:
            the data's own (see `scoring_style`).

    Returns:
        A JSON-able dict: frame_nll, play_nll, articulate_nll, accuracy,
        pieces, steps, skipped (MIDI files that could not be read), and notes
        about what was scored; with `per_piece`, also `per_piece`: a list of
        dicts, one per piece in the data's order, each with its `piece`
        name and its own figures.

    Raises:
        UserError: for a missing or empty split, or data the model cannot be
            scored on: another time resolution, notes outside the model's
            range, or no articulation for a model that learned it.
    """
    import biax_keras

    model = biax_keras.load_model(model_path)
    config = model.config
    weights = scoring_style(config, source, style)
    pieces, meta, skipped, split = _read_source(source, split, config, steps_per_quarter)
    if not pieces:
        raise UserError(f"split {split!r} of {source} holds no pieces; "
                        f"{_empty_split_hint(source, split, meta)}")

    _check_scorable(source, int(meta["steps_per_quarter"]), bool(meta.get("play_only")), config)
    notes = []
    play_only = bool(config.play_only)
    fitted, outside = [], meta.get("notes_dropped", 0)
    for _, roll, beat in pieces:
        roll, dropped = _fit_range(roll, meta["lowest_pitch"], config.lowest_pitch, config.num_notes)
        fitted.append((roll, beat))
        outside += dropped
    if outside:
        top = config.lowest_pitch + config.num_notes - 1
        raise UserError(
            f"{outside} notes of the data fall outside the model's range "
            f"(MIDI {config.lowest_pitch}..{top}); score data prepared with "
            f"--lowest-pitch {config.lowest_pitch} --num-notes {config.num_notes}"
        )
    scores, alone = score_pieces(model, fitted, play_only, each=True, style=weights)
    result = scores.as_dict()
    if config.styles:
        result["style"] = {n: round(float(w), 6) for n, w in zip(config.styles, weights) if w}
    if per_piece:
        result["per_piece"] = [dict(piece=name, **one.as_dict())
                               for (name, _, _), one in zip(pieces, alone)]
    if skipped:
        notes.append(f"{len(skipped)} MIDI file(s) could not be read and were skipped")
    result.update(split=split, source=str(source), play_only=play_only, notes=notes,
                  skipped=skipped)
    return result


def format_scores(result):
    """A short human summary of `evaluate_model`'s result."""
    lines = [
        f"{result['pieces']} pieces, {result['steps']} steps "
        f"({result['split'] or 'whole MIDI files'})",
        f"frame NLL      {result['frame_nll']:.4f} nats/step",
        f"  play         {result['play_nll']:.4f}",
    ]
    if not result["play_only"]:
        lines.append(f"  articulate   {result['articulate_nll']:.4f}")
    lines.append(f"frame accuracy {result['accuracy']:.4f}")
    if result.get("style"):
        from biax_keras.generation.styles import words

        lines.append("in style       " + words(result["style"]))
    if "per_piece" in result:
        lines.append("frame NLL   steps  accuracy  piece")
        lines += [f"{one['frame_nll']:9.4f} {one['steps']:7d} {one['accuracy']:9.4f}  {one['piece']}"
                  for one in result["per_piece"]]
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)
