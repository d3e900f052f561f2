import math

import keras
import numpy as np
import pytest
from keras import ops

from biax_keras import evaluate
from biax_keras.model import BiaxialConfig


class FixedProbabilities(keras.Model):
    """Predicts P(play)=`play` and P(articulate)=`articulate` everywhere."""

    def __init__(self, play, articulate):
        super().__init__()
        self.play, self.articulate = play, articulate
        self.config = BiaxialConfig(time_units=(4,), note_units=(4,))

    def call(self, inputs, training=None):
        target = ops.cast(inputs["target"], "float32")
        p = ops.ones_like(target[..., :1])
        return ops.concatenate([p * self.play, p * self.articulate], axis=-1)


def _roll(steps, notes, onsets):
    """A roll with notes struck at (step, note, length) triples."""
    roll = np.zeros((steps, notes, 2), np.uint8)
    for step, note, length in onsets:
        roll[step : step + length, note, 0] = 1
        roll[step, note, 1] = 1
    return roll


def test_nll_of_fixed_probabilities_matches_hand_computation():
    notes, play_p, art_p = 5, 0.25, 0.6
    a = _roll(4, notes, [(0, 1, 2), (2, 3, 2)])  # 4 sounding steps, 2 onsets
    b = _roll(3, notes, [(1, 0, 1)])  # 1 sounding step, 1 onset
    model = FixedProbabilities(play_p, art_p)
    scores = evaluate.score_pieces(model, [(a, np.zeros(4)), (b, np.zeros(3))]).as_dict()

    sounding, silent = 5, (4 + 3) * notes - 5
    play = -(sounding * math.log(play_p) + silent * math.log(1 - play_p))
    # Articulate counts only sounding notes: 3 struck, 2 held.
    articulate = -(3 * math.log(art_p) + 2 * math.log(1 - art_p))
    assert scores["steps"] == 7 and scores["pieces"] == 2
    assert scores["play_nll"] == pytest.approx(play / 7, rel=1e-5)
    assert scores["articulate_nll"] == pytest.approx(articulate / 7, rel=1e-5)
    assert scores["frame_nll"] == pytest.approx((play + articulate) / 7, rel=1e-5)


def test_play_only_scores_ignore_articulate():
    roll = _roll(4, 3, [(0, 0, 4)])
    scores = evaluate.score_pieces(
        FixedProbabilities(0.5, 0.1), [(roll, np.zeros(4))], play_only=True
    ).as_dict()
    assert scores["articulate_nll"] == 0.0
    assert scores["frame_nll"] == pytest.approx(3 * math.log(2), rel=1e-5)  # 3 notes at p=0.5, per step


def test_accuracy_on_hand_made_rolls():
    scores = evaluate.Scores()
    target = _roll(2, 4, [(0, 0, 2), (0, 1, 1)])  # sounding: (0,0) (1,0) (0,1)
    probabilities = np.zeros((2, 4, 2), np.float32)
    probabilities[0, 0, 0] = 0.9  # TP
    probabilities[1, 0, 0] = 0.4  # FN
    probabilities[0, 1, 0] = 0.7  # TP
    probabilities[1, 3, 0] = 0.8  # FP
    scores.add(target, probabilities, play_only=True)
    assert scores.as_dict()["accuracy"] == pytest.approx(2 / (2 + 1 + 1))


def test_first_step_is_predicted_from_silence():
    roll = _roll(3, 2, [(0, 0, 3)])
    previous = evaluate.previous_steps(roll)
    assert previous.shape == roll.shape
    assert not previous[0].any()
    np.testing.assert_array_equal(previous[1:], roll[:-1])


def test_padding_does_not_change_scores():
    """Pieces of different lengths scored together equal pieces scored alone."""
    from biax_keras.model import build_model

    model = build_model(BiaxialConfig(time_units=(6,), note_units=(5,), num_notes=8), compile=False)
    rng = np.random.default_rng(3)
    pieces = [
        ((rng.random((n, 8, 2)) < 0.3).astype(np.uint8), rng.integers(0, 16, n))
        for n in (5, 9, 12)
    ]
    together = evaluate.score_pieces(model, pieces).as_dict()
    alone = [evaluate.score_pieces(model, [p]) for p in pieces]
    total = sum(s.play_nll + s.articulate_nll for s in alone) / sum(s.steps for s in alone)
    assert together["frame_nll"] == pytest.approx(total, rel=1e-5)


def test_range_fitting_counts_notes_outside():
    roll = _roll(2, 10, [(0, 0, 1), (0, 9, 2)])
    fitted, outside = evaluate._fit_range(roll, data_lowest=20, model_lowest=21, model_notes=8)
    # Data note 0 is MIDI 20 (below the model) and note 9 is MIDI 29 (above 28).
    assert outside == 2
    assert fitted.shape == (2, 8, 2) and not fitted.any()
    inside = _roll(2, 4, [(0, 2, 1)])
    fitted, outside = evaluate._fit_range(inside, data_lowest=22, model_lowest=21, model_notes=8)
    assert outside == 0 and fitted[0, 3, 0] == 1 and fitted.sum() == 2
