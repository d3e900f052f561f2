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
"""

import contextlib
import dataclasses
import logging
import os
import tempfile

import numpy as np

from biax_keras.errors import UserError

log = logging.getLogger(__name__)

# Pieces are scored in batches padded at the end: the time axis is causal, so
# padding after a piece cannot change the probabilities of its own steps.
_BATCH_SIZE = 16
# JSB-format files are read on the 88 keys of the piano (MIDI 21..108).
PIANO_LOWEST, PIANO_NOTES = 21, 88


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
        p = np.clip(probabilities.astype(np.float64), 1e-7, 1.0 - 1e-7)
        t = target.astype(np.float64)
        bce = -(t * np.log(p) + (1.0 - t) * np.log(1.0 - p))
        self.play_nll += float(bce[..., 0].sum())
        if not play_only:
            self.articulate_nll += float((bce[..., 1] * t[..., 0]).sum())
        predicted = probabilities[..., 0] > 0.5
        true = target[..., 0] > 0
        self.true_positives += int(np.sum(predicted & true))
        self.false_positives += int(np.sum(predicted & ~true))
        self.false_negatives += int(np.sum(~predicted & true))
        self.steps += int(target.shape[0])
        self.pieces += 1

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
    silence = np.zeros_like(roll[:1])
    return np.concatenate([silence, roll[:-1]], axis=0)


def score_pieces(model, pieces, play_only=False, batch_size=_BATCH_SIZE):
    """Scores whole pieces with a Keras `BiaxialModel`.

    Args:
        model: a `BiaxialModel` (or any Keras model taking its inputs dict).
        pieces: iterable of `(roll, beat)` in the model's note range.
        play_only: score play alone.
        batch_size: pieces scored together (padded at the end to the longest).

    Returns:
        `Scores` over all pieces.
    """
    scores = Scores()
    pieces = sorted(pieces, key=lambda piece: len(piece[0]))
    for start in range(0, len(pieces), batch_size):
        batch = pieces[start : start + batch_size]
        longest = max(len(roll) for roll, _ in batch)
        notes = batch[0][0].shape[1]
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
        probabilities = np.asarray(model(inputs, training=False))
        for i, (roll, _) in enumerate(batch):
            scores.add(roll, probabilities[i, : len(roll)], play_only)
    return scores


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


def _read_source(source, split, model_config):
    """Pieces of `split` from a prepared folder or a JSB JSON/pickle file.

    Returns:
        `(pieces, meta)`: pieces as `(roll, beat)` in the data's own range.
    """
    from biax_keras import data

    if not os.path.exists(source):
        raise UserError(f"{source} does not exist; give a prepared folder or a JSB .json/.pickle file")
    if os.path.isdir(source):
        meta = data.load_meta(source)
        return [(roll, beat) for _, roll, beat in data.read_pieces(source, split)], meta
    # A JSB-format file: prepare it on the whole piano (so that notes outside
    # the model's range are counted, not silently dropped) at the model's
    # resolution, in a scratch folder.
    with tempfile.TemporaryDirectory(prefix="biax-evaluate-") as scratch:
        out = os.path.join(scratch, "prepared")
        with _quiet(data.log):
            report = data.prepare(
                source,
                out,
                steps_per_quarter=model_config.steps_per_quarter,
                lowest_pitch=PIANO_LOWEST,
                num_notes=PIANO_NOTES,
            )
        meta = dict(data.load_meta(out), notes_dropped=int(report.get("notes_dropped", 0)))
        return [(roll, beat) for _, roll, beat in data.read_pieces(out, split)], meta


def evaluate_model(model_path, source, split="valid"):
    """Frame NLL, its parts and frame accuracy of a model on a dataset split.

    Args:
        model_path: a `.keras` file, a run folder or an exported SavedModel.
        source: a prepared folder, or a JSB-format JSON/pickle file (scored at
            the model's own resolution and note range).
        split: `train`, `valid` or `test`.

    Returns:
        A JSON-able dict: frame_nll, play_nll, articulate_nll, accuracy,
        pieces, steps, and notes about what was scored.

    Raises:
        UserError: for a missing or empty split, or data the model's note range
            does not cover.
    """
    import biax_keras

    model = biax_keras.load_model(model_path)
    config = model.config
    pieces, meta = _read_source(source, split, config)
    if not pieces:
        raise UserError(f"split {split!r} of {source} holds no pieces; try --split valid or --split test")

    if int(meta["steps_per_quarter"]) != config.steps_per_quarter:
        raise UserError(
            f"{source} has {meta['steps_per_quarter']} steps per quarter note and the model "
            f"{config.steps_per_quarter}; prepare the data with --steps-per-quarter "
            f"{config.steps_per_quarter}")
    notes = []
    play_only = bool(config.play_only)
    if meta.get("play_only") and not play_only:
        play_only = True
        notes.append("the data has no articulation: scored play only")
    fitted, outside = [], meta.get("notes_dropped", 0)
    for roll, beat in pieces:
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
    result = score_pieces(model, fitted, play_only).as_dict()
    result.update(split=split, source=str(source), play_only=play_only, notes=notes)
    return result


def format_scores(result):
    """A short human summary of `evaluate_model`'s result."""
    lines = [
        f"{result['pieces']} pieces, {result['steps']} steps ({result['split']})",
        f"frame NLL      {result['frame_nll']:.4f} nats/step",
        f"  play         {result['play_nll']:.4f}",
    ]
    if not result["play_only"]:
        lines.append(f"  articulate   {result['articulate_nll']:.4f}")
    lines.append(f"frame accuracy {result['accuracy']:.4f}")
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)
