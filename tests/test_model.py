"""BiaxialModel: loss and metrics on hand-computed examples, configs, saving, note counts."""

import json
import math

import keras
import numpy as np
import pytest

from biax_keras.errors import UserError
from biax_keras.nn.model import (
    BiaxialConfig,
    BiaxialModel,
    FrameNLL,
    NLLPart,
    NoteOnRate,
    build_model,
)
from biax_keras.nn.note_features import note_feature_size
from biax_keras.train.config import TrainConfig, resolve_config

TINY = BiaxialConfig(time_units=(6,), note_units=(5, 4), dropout=0.0)

# Two steps of three notes: step 0 strikes note 0 and holds note 1; step 1 is silent.
TARGET = np.array([[[[1, 1], [1, 0], [0, 0]],
                    [[0, 0], [0, 0], [0, 0]]]], "float32")
PROBABILITIES = np.array([[[[0.9, 0.8], [0.6, 0.3], [0.2, 0.7]],
                           [[0.1, 0.5], [0.4, 0.6], [0.3, 0.9]]]], "float32")


def expected_nll():
    log = math.log
    play = [-(log(0.9) + log(0.6) + log(1 - 0.2)), -(log(1 - 0.1) + log(1 - 0.4) + log(1 - 0.3))]
    # Articulate counts only where the target plays: notes 0 and 1 of step 0.
    articulate = [-(log(0.8) + log(1 - 0.3)), 0.0]
    return play, articulate


def random_inputs(batch, steps, notes, seed=0):
    rng = np.random.default_rng(seed)
    roll = (rng.random((batch, steps + 1, notes, 2)) < 0.1).astype("float32")
    roll[..., 1] *= roll[..., 0]
    beat = np.tile(np.arange(steps) % 16, (batch, 1)).astype("int32")
    return {"roll": roll[:, :-1], "beat": beat, "target": roll[:, 1:]}


def test_frame_nll_on_a_hand_computed_example():
    play, articulate = expected_nll()
    loss = float(FrameNLL()(TARGET, PROBABILITIES))
    # Summed over notes, averaged over the two steps.
    assert loss == pytest.approx((play[0] + articulate[0] + play[1]) / 2, rel=1e-5)
    play_only = float(FrameNLL(play_only=True)(TARGET, PROBABILITIES))
    assert play_only == pytest.approx(sum(play) / 2, rel=1e-5)


def test_nll_parts_known_values():
    play, articulate = expected_nll()
    for part, value in (("play", sum(play) / 2), ("articulate", sum(articulate) / 2),
                        ("frame", (sum(play) + sum(articulate)) / 2)):
        metric = NLLPart(part)
        metric.update_state(TARGET, PROBABILITIES)
        assert float(metric.result()) == pytest.approx(value, rel=1e-5), part
    metric = NLLPart("articulate", play_only=True)
    metric.update_state(TARGET, PROBABILITIES)
    assert float(metric.result()) == 0.0


def test_note_on_precision_and_recall_known_values():
    target = np.zeros((1, 1, 6, 2), "float32")
    target[0, 0, [0, 1, 2, 3]] = [1, 1]          # four true note-ons
    target[0, 0, 4] = [1, 0]                     # a held note: not a note-on
    pred = np.full((1, 1, 6, 2), 0.1, "float32")
    pred[0, 0, [0, 1, 5]] = [0.9, 0.9]           # predicted note-ons: two right, one wrong
    pred[0, 0, 2] = [0.9, 0.2]                   # predicted held: not a note-on
    pred[0, 0, 4] = [0.8, 0.1]
    results = {}
    for kind in ("precision", "recall"):
        metric = NoteOnRate(kind)
        metric.update_state(target, pred)
        results[kind] = float(metric.result())
    assert results == pytest.approx({"precision": 2 / 3, "recall": 2 / 4})
    # Play-only counts sounding notes: 5 true, 5 predicted, 4 in common.
    play = NoteOnRate("precision", play_only=True)
    play.update_state(target, pred)
    assert play.name == "play_precision" and float(play.result()) == pytest.approx(4 / 5)
    empty = NoteOnRate("recall")
    empty.update_state(np.zeros_like(target), pred)
    assert float(empty.result()) == 0.0  # no note-on to find: 0, not NaN


def _flip_articulation(roll):
    flipped = roll.copy()
    flipped[..., 1] = 1 - flipped[..., 1]
    return flipped


@pytest.mark.parametrize("play_only", [True, False])
def test_only_a_play_only_model_is_blind_to_articulation_in_its_inputs(play_only):
    """A play-only model is shown no articulation (its data may come from
    articulated MIDI or from files without any); a full model is."""
    model = build_model(BiaxialConfig(time_units=(4,), note_units=(3,), play_only=play_only))
    inputs = random_inputs(2, 5, 10, seed=3)
    flipped = {key: _flip_articulation(value) if key != "beat" else value
               for key, value in inputs.items()}
    same = np.allclose(np.asarray(model(inputs)), np.asarray(model(flipped)), atol=1e-6)
    assert same == play_only


def test_play_only_model_ignores_articulation():
    model = build_model(BiaxialConfig(time_units=(4,), note_units=(3,), play_only=True))
    inputs = random_inputs(2, 4, 10)
    probabilities = model(inputs)
    target = inputs["target"]
    flipped = _flip_articulation(target)
    assert float(model.loss(target, probabilities)) == pytest.approx(
        float(model.loss(flipped, probabilities)), rel=1e-6)
    scores = model.evaluate(inputs, target, verbose=0, return_dict=True)
    assert "articulate_nll" not in scores and "play_precision" in scores
    assert scores["frame_nll"] == pytest.approx(scores["play_nll"])


def test_default_config_parameter_count():
    config = BiaxialConfig()
    model = build_model(config, compile=False)
    expected, inputs = 0, note_feature_size(config.beat_bits)
    for units in config.time_units:
        expected += 4 * units * (inputs + units + 1)
        inputs = units
    inputs += 2
    for units in config.note_units:
        expected += 4 * units * (inputs + units + 1)
        inputs = units
    expected += 2 * inputs + 2
    assert model.count_params() == expected == 1_371_102


def test_a_model_without_pitch_or_bar_position_saves_loads_and_steps(tmp_path):
    config = BiaxialConfig(time_units=(6,), note_units=(5,), dropout=0.0, num_notes=16,
                           beat_bits=0, pitch_position=False)
    model = build_model(config, compile=False)
    assert model.time_axis.weights[0].shape[0] == note_feature_size(0, False) == 74
    path = tmp_path / "bare.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.config == config
    rng = np.random.default_rng(0)
    inputs = {"roll": (rng.random((1, 4, 16, 2)) < 0.3).astype("float32"),
              "beat": np.arange(4, dtype="int32")[None]}
    inputs["target"] = inputs["roll"]
    np.testing.assert_allclose(np.asarray(loaded(inputs)), np.asarray(model(inputs)), atol=1e-6)


def test_a_config_written_before_pitch_position_existed_loads_with_it_on():
    values = BiaxialConfig(time_units=(4,), note_units=(4,)).to_dict()
    del values["pitch_position"]
    assert BiaxialConfig.from_dict(values).pitch_position is True
    with pytest.raises(UserError, match="beat_bits must be 0"):
        BiaxialConfig(beat_bits=-1)


def test_config_json_round_trip():
    config = BiaxialConfig(time_units=(32, 16), note_units=(8,), dropout=0.25, lowest_pitch=21,
                           num_notes=88, steps_per_quarter=1, play_only=True)
    assert BiaxialConfig.from_json(config.to_json()) == config
    assert json.loads(config.to_json())["time_units"] == [32, 16]
    train = TrainConfig(epochs=3, steps_per_epoch=None, clipnorm=None, patience=5)
    assert TrainConfig.from_dict(json.loads(json.dumps(train.to_dict()))) == train


@pytest.mark.parametrize("section, values, words", [
    ("model", {"time_unit": [8]}, "unknown model config key(s) time_unit"),
    ("model", {"time_units": 8}, "time_units"),
    ("model", {"time_units": [8, "8"]}, "time_units"),
    ("model", {"dropout": "0.5"}, "dropout"),
    ("model", {"play_only": 1}, "play_only"),
    ("model", {"num_notes": 78.0}, "num_notes"),
    ("train", {"epoch": 2}, "unknown train config key(s) epoch"),
    ("train", {"epochs": True}, "epochs"),
    ("train", {"epochs": 2.5}, "epochs"),
    ("train", {"learning_rate": "fast"}, "learning_rate"),
    ("train", {"patience": "none"}, "patience"),
    ("train", {"window": 0}, "window"),
    ("train", {"clipnorm": -1}, "clipnorm"),
])
def test_config_errors_are_one_line_user_errors(section, values, words):
    with pytest.raises(UserError) as error:
        resolve_config({section: values})
    message = str(error.value)
    assert words in message and "\n" not in message


def test_null_is_accepted_only_where_optional():
    _, train = resolve_config({"train": {"steps_per_epoch": None, "patience": None}})
    assert train.steps_per_epoch is None and train.patience is None
    with pytest.raises(UserError, match="epochs"):
        resolve_config({"train": {"epochs": None}})


def test_saved_model_reloads_safely_with_identical_outputs(tmp_path):
    model = build_model(TINY)
    inputs = random_inputs(2, 6, 12)
    model.train_on_batch(inputs, inputs["target"])  # optimizer state too
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, BiaxialModel) and loaded.config == TINY
    np.testing.assert_array_equal(np.asarray(loaded(inputs)), np.asarray(model(inputs)))
    assert [w.shape for w in loaded.get_weights()] == [w.shape for w in model.get_weights()]
    assert float(loaded.evaluate(inputs, inputs["target"], verbose=0)[0]) == pytest.approx(
        float(model.evaluate(inputs, inputs["target"], verbose=0)[0]), rel=1e-6)


def test_a_78_note_model_runs_on_88_notes():
    model = build_model(TINY)
    probabilities = np.asarray(model(random_inputs(2, 5, 88)))
    assert probabilities.shape == (2, 5, 88, 2)
    assert np.isfinite(probabilities).all()
    assert ((probabilities > 0) & (probabilities < 1)).all()


def test_fit_lowers_the_loss_on_a_repeated_pattern():
    keras.utils.set_random_seed(0)
    model = build_model(TINY, learning_rate=0.02)
    inputs = random_inputs(4, 8, 16, seed=1)
    history = model.fit(inputs, inputs["target"], epochs=15, batch_size=4, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert set(history.history) >= {"frame_nll", "play_nll", "articulate_nll",
                                    "note_on_precision", "note_on_recall"}


def test_input_dropout_hides_previous_notes_in_training_only(tmp_path):
    """A sparse past in training: with almost every previous note hidden the
    model sees silence; without training, or at 0, it sees the roll."""
    config = BiaxialConfig(time_units=(6,), note_units=(5,), dropout=0.0, input_dropout=0.999)
    model = build_model(config, compile=False)
    plain = build_model(BiaxialConfig(time_units=(6,), note_units=(5,), dropout=0.0),
                        compile=False)
    plain.set_weights(model.get_weights())  # the option adds no weights
    inputs = random_inputs(2, 6, 12, seed=4)
    silent = dict(inputs, roll=np.zeros_like(inputs["roll"]))
    np.testing.assert_allclose(np.asarray(model(inputs, training=True)),
                               np.asarray(plain(silent)), atol=1e-6)
    np.testing.assert_allclose(np.asarray(model(inputs)), np.asarray(plain(inputs)), atol=1e-6)
    # It trains, saves and reloads with the option.
    keras.utils.set_random_seed(0)
    trained = build_model(BiaxialConfig(time_units=(6,), note_units=(5,), input_dropout=0.3))
    trained.fit(inputs, inputs["target"], epochs=2, batch_size=2, verbose=0)
    trained.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert loaded.config.input_dropout == 0.3
    np.testing.assert_allclose(np.asarray(loaded(inputs)), np.asarray(trained(inputs)), atol=1e-6)
    with pytest.raises(UserError, match="input_dropout must be in"):
        BiaxialConfig(input_dropout=1.0)
