"""The biaxial layers: shapes, known NoteFeatures values, configs, stepping == full pass."""

import numpy as np
import pytest
import tensorflow as tf

from biax_keras.music import representation as rep
from biax_keras.nn.note_axis_lstm import NoteAxisLSTM
from biax_keras.nn.note_features import NoteFeatures, note_feature_size
from biax_keras.nn.play_articulate_head import PlayArticulateHead
from biax_keras.nn.time_axis_lstm import TimeAxisLSTM

LOWEST = 24
NOTES = 78
BEAT_BITS = 6
FEATURES = note_feature_size(BEAT_BITS)
# Offsets of each feature group in NoteFeatures' output.
POSITION, CLASS, NEIGHBOURS, CONTEXT, BEAT = 0, 1, 13, 63, 75


def neighbour(features, offset):
    """`(..., 2)` play/articulate of the note `offset` semitones away, from features."""
    start = NEIGHBOURS + 2 * (offset + 12)
    return features[..., start:start + 2]


def features_of(roll, beat, lowest=LOWEST):
    return np.asarray(NoteFeatures(lowest_pitch=lowest)(
        np.asarray(roll, "float32"), np.asarray(beat, "int32")))


def test_feature_groups_add_up():
    assert FEATURES == 1 + 12 + 50 + 12 + BEAT_BITS == BEAT + BEAT_BITS


# ----------------------------------------------------------------------------
# NoteFeatures
# ----------------------------------------------------------------------------


def test_note_features_static_and_dynamic_shapes():
    layer = NoteFeatures(lowest_pitch=LOWEST)
    assert layer(np.zeros((2, 5, NOTES, 2), "float32"), np.zeros((2, 5), "int32")).shape == (
        2, 5, NOTES, FEATURES)
    assert layer.compute_output_shape((2, 5, NOTES, 2), (2, 5)) == (2, 5, NOTES, FEATURES)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 2], tf.float32),
                                  tf.TensorSpec([None, None], tf.int32)])
    def dynamic(roll, beat):
        return layer(roll, beat)

    for shape in ((1, 3, 78), (4, 7, 88), (2, 1, 5)):
        out = dynamic(tf.zeros(shape + (2,)), tf.zeros(shape[:2], tf.int32))
        assert out.shape == shape + (FEATURES,)


def test_pitch_position_and_class():
    features = features_of(np.zeros((1, 1, NOTES, 2)), [[0]])[0, 0]
    pitches = LOWEST + np.arange(NOTES)
    np.testing.assert_allclose(features[:, POSITION], (pitches - 64) / 32, atol=1e-6)
    np.testing.assert_array_equal(features[:, CLASS:CLASS + 12], np.eye(12)[pitches % 12])
    # The same pitch gets the same features whatever the range starts at.
    shifted = features_of(np.zeros((1, 1, 88, 2)), [[0]], lowest=21)[0, 0]
    np.testing.assert_allclose(shifted[3:81, :NEIGHBOURS], features[:, :NEIGHBOURS], atol=1e-6)


def test_neighbours_at_the_range_edges_are_zero_not_wrapped():
    roll = np.zeros((1, 1, NOTES, 2))
    roll[0, 0, 0] = [1, 1]            # lowest note struck
    roll[0, 0, NOTES - 1] = [1, 0]    # highest note held
    roll[0, 0, 12] = [1, 0]           # an octave above the lowest
    features = features_of(roll, [[0]])[0, 0]

    lowest, highest = features[0], features[NOTES - 1]
    np.testing.assert_array_equal(neighbour(lowest, 0), [1, 1])
    np.testing.assert_array_equal(neighbour(lowest, 12), [1, 0])
    for offset in range(-12, 0):  # below the range: silence, though the top note sounds
        np.testing.assert_array_equal(neighbour(lowest, offset), [0, 0])
    np.testing.assert_array_equal(neighbour(highest, 0), [1, 0])
    for offset in range(1, 13):   # above the range: silence, though the bottom note sounds
        np.testing.assert_array_equal(neighbour(highest, offset), [0, 0])
    # From inside the range the edge notes are seen where they are.
    np.testing.assert_array_equal(neighbour(features[1], -1), [1, 1])
    np.testing.assert_array_equal(neighbour(features[NOTES - 13], 12), [1, 0])
    np.testing.assert_array_equal(neighbour(features[NOTES - 14], 12), [0, 0])
    # Each sounding note is seen by the notes within an octave of it, in range
    # only: 13 for each edge note, 25 for the one an octave up; no more (no wrap).
    assert features[:, NEIGHBOURS:CONTEXT:2].sum() == 13 + 13 + 25
    assert features[:, NEIGHBOURS + 1:CONTEXT:2].sum() == 13


def test_pitch_class_context_is_rotated_to_the_notes_own_class():
    roll = np.zeros((1, 1, NOTES, 2))
    for pitch in (60, 64, 67, 72):   # C E G C: two Cs, one E, one G
        roll[0, 0, pitch - LOWEST, 0] = 1
    features = features_of(roll, [[0]])[0, 0]
    expected_by_class = np.zeros(12)
    expected_by_class[[0, 4, 7]] = [2, 1, 1]
    for pitch in (24, 50, 62, 64, 101):   # C, D, D, E, F
        context = features[pitch - LOWEST, CONTEXT:CONTEXT + 12]
        np.testing.assert_array_equal(context, np.roll(expected_by_class, -(pitch % 12)))
    d = features[62 - LOWEST, CONTEXT:CONTEXT + 12]
    assert d[0] == 0 and d[2] == 1 and d[5] == 1 and d[10] == 2  # D: E is +2, G +5, C +10


@pytest.mark.parametrize("time_signature, per_bar", [((4, 4), 16), ((3, 4), 12)])
def test_beat_bits_count_the_bar_position(time_signature, per_bar):
    beat = rep.bar_positions(2 * per_bar, steps_per_quarter=4, time_signature=time_signature)
    features = features_of(np.zeros((1, len(beat), NOTES, 2)), beat[None])[0]
    bits = features[..., BEAT:]
    assert set(np.unique(bits)) == {-1.0, 1.0}
    np.testing.assert_array_equal(bits, bits[:, :1].repeat(NOTES, axis=1))  # same for every note
    for step, position in enumerate(beat):
        expected = [1.0 if (position >> i) & 1 else -1.0 for i in range(BEAT_BITS)]
        np.testing.assert_array_equal(bits[step, 0], expected)
    assert beat.max() == per_bar - 1
    np.testing.assert_array_equal(bits[per_bar - 1, 0], {
        15: [1, 1, 1, 1, -1, -1], 11: [1, 1, -1, 1, -1, -1]}[per_bar - 1])
    np.testing.assert_array_equal(bits[per_bar, 0], -np.ones(BEAT_BITS))  # next bar line


# ----------------------------------------------------------------------------
# The recurrent layers
# ----------------------------------------------------------------------------


def test_time_axis_shapes_and_note_independence():
    layer = TimeAxisLSTM(units=(6, 5), dropout=0.0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 88, 7)).astype("float32")
    out = np.asarray(layer(x))
    assert out.shape == (2, 4, 88, 5)
    assert layer.compute_output_shape((2, 4, 88, 7)) == (2, 4, 88, 5)
    # Weights are shared by the notes: the first 78 notes do not see the others.
    np.testing.assert_allclose(np.asarray(layer(x[:, :, :78])), out[:, :, :78], atol=1e-6)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 7], tf.float32)])
    def dynamic(features):
        return layer(features)

    assert dynamic(tf.zeros((3, 2, 5, 7))).shape == (3, 2, 5, 5)


def test_note_axis_shapes_and_teacher_forcing():
    layer = NoteAxisLSTM(units=(6, 4), dropout=0.0)
    rng = np.random.default_rng(1)
    time_outputs = rng.standard_normal((2, 3, 10, 5)).astype("float32")
    target = (rng.random((2, 3, 10, 2)) < 0.5).astype("float32")
    out = np.asarray(layer(time_outputs, target))
    assert out.shape == (2, 3, 10, 4)
    # A note sees the targets of the notes below it, never its own or those above.
    changed = target.copy()
    changed[:, :, 6] = 1 - changed[:, :, 6]
    out2 = np.asarray(layer(time_outputs, changed))
    np.testing.assert_allclose(out2[:, :, :7], out[:, :, :7], atol=1e-6)
    assert np.abs(out2[:, :, 7:] - out[:, :, 7:]).max() > 1e-4

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 5], tf.float32),
                                  tf.TensorSpec([None, None, None, 2], tf.float32)])
    def dynamic(h, t):
        return layer(h, t)

    assert dynamic(tf.zeros((1, 4, 7, 5)), tf.zeros((1, 4, 7, 2))).shape == (1, 4, 7, 4)


def test_dropout_only_while_training():
    layer = TimeAxisLSTM(units=(16,), dropout=0.5)
    x = np.random.default_rng(2).standard_normal((1, 3, 4, 5)).astype("float32")
    np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(layer(x, training=False)))
    assert np.abs(np.asarray(layer(x, training=True)) - np.asarray(layer(x))).max() > 1e-3


@pytest.mark.parametrize("rate", [0.5, 0.3])
def test_byte_dropout_keeps_the_expected_value(rate):
    from biax_keras.nn.lstm_stack import _ByteDropout

    layer = _ByteDropout(rate, seed=1)
    x = np.ones((10, 100, 101), "float32")  # not a multiple of 4 elements
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    first, second = np.asarray(layer(x, training=True)), np.asarray(layer(x, training=True))
    assert first.shape == x.shape and not np.array_equal(first, second)
    dropped = round(rate * 256) / 256
    assert np.mean(first == 0) == pytest.approx(dropped, abs=0.01)
    np.testing.assert_allclose(np.unique(first), [0.0, 1 / (1 - dropped)], rtol=1e-6)
    assert first.mean() == pytest.approx(1.0, abs=0.02)


def _random_weights(layer, seed):
    """Every weight random (biases included), so no part of the step hides behind zeros."""
    rng = np.random.default_rng(seed)
    for variable in layer.weights:
        variable.assign(rng.normal(0.0, 0.5, variable.shape).astype("float32"))
    return layer


def test_time_axis_step_equals_full_pass():
    layer = TimeAxisLSTM(units=(7, 6), dropout=0.5)
    rng = np.random.default_rng(3)
    batch, steps, notes = 2, 9, 5
    features = rng.standard_normal((batch, steps, notes, 11)).astype("float32")
    layer.build(features.shape)
    _random_weights(layer, 3)
    full = np.asarray(layer(features, training=False))

    states = layer.initial_state(batch * notes)
    for t in range(steps):
        out, states = layer.step(features[:, t], states)
        assert out.shape == (batch, notes, 6)
        np.testing.assert_allclose(np.asarray(out), full[:, t], atol=1e-5, rtol=0)


def test_note_axis_precompute_and_step_equal_full_pass():
    layer = NoteAxisLSTM(units=(7, 3), dropout=0.5)
    rng = np.random.default_rng(4)
    batch, steps, notes, size = 2, 3, 8, 6
    time_outputs = rng.standard_normal((batch, steps, notes, size)).astype("float32")
    target = (rng.random((batch, steps, notes, 2)) < 0.4).astype("float32")
    layer.build(time_outputs.shape)
    _random_weights(layer, 4)
    full = np.asarray(layer(time_outputs, target, training=False))

    rows = batch * steps
    projected, below_kernel = layer.precompute(time_outputs.reshape(rows, notes, size))
    assert projected.shape == (notes, rows, 4 * 7)  # note-major
    states = layer.initial_state(rows)
    below = np.zeros((rows, 2), "float32")
    for n in range(notes):
        out, states = layer.step(projected[n], below, states, below_kernel)
        np.testing.assert_allclose(np.asarray(out).reshape(batch, steps, 3), full[:, :, n],
                                   atol=1e-5, rtol=0)
        below = target[:, :, n].reshape(rows, 2)


def test_head_logits_then_probabilities_is_the_head():
    head = PlayArticulateHead()
    x = np.random.default_rng(6).standard_normal((3, 9)).astype("float32")
    head.build(x.shape)
    _random_weights(head, 6)
    logits = np.asarray(head.logits(x))
    np.testing.assert_allclose(np.asarray(head.probabilities(logits)), np.asarray(head(x)),
                               atol=1e-6)
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), np.asarray(head(x)), atol=1e-6)


def test_head_gives_probabilities():
    head = PlayArticulateHead()
    out = np.asarray(head(np.random.default_rng(5).standard_normal((2, 3, 4, 9)).astype("float32") * 50))
    assert out.shape == (2, 3, 4, 2) and head.compute_output_shape((2, 3, 4, 9)) == (2, 3, 4, 2)
    assert ((out >= 0) & (out <= 1)).all()


# ----------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("layer, call", [
    (NoteFeatures(lowest_pitch=21, beat_bits=4),
     lambda l: l(np.ones((1, 2, 3, 2), "float32"), np.ones((1, 2), "int32"))),
    (NoteFeatures(lowest_pitch=21, beat_bits=0, pitch_position=False),
     lambda l: l(np.ones((1, 2, 3, 2), "float32"), np.ones((1, 2), "int32"))),
    (TimeAxisLSTM(units=(4, 3), dropout=0.25), lambda l: l(np.ones((1, 2, 3, 5), "float32"))),
    (NoteAxisLSTM(units=(4,), dropout=0.1),
     lambda l: l(np.ones((1, 2, 3, 5), "float32"), np.ones((1, 2, 3, 2), "float32"))),
    (PlayArticulateHead(), lambda l: l(np.ones((1, 2, 3, 5), "float32"))),
])
def test_get_config_round_trips(layer, call):
    out = np.asarray(call(layer))
    config = layer.get_config()
    copy = type(layer).from_config(config)
    assert copy.get_config() == config
    call(copy)
    copy.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np.asarray(call(copy)), out)


def test_without_pitch_position_or_bar_position_the_other_features_are_unchanged():
    rng = np.random.default_rng(3)
    roll = (rng.random((2, 6, NOTES, 2)) < 0.2).astype("float32")
    roll[:, :, -12:] = 0  # room to move the roll up an octave
    beat = rng.integers(0, 16, (2, 6)).astype("int32")
    full = features_of(roll, beat)
    bare = np.asarray(NoteFeatures(lowest_pitch=LOWEST, beat_bits=0, pitch_position=False)(
        roll, beat))
    assert bare.shape[-1] == note_feature_size(0, pitch_position=False) == FEATURES - 1 - BEAT_BITS
    np.testing.assert_array_equal(bare, full[..., CLASS:BEAT])
    # Transposing the roll by an octave now moves the features with it exactly.
    up = np.zeros_like(roll)
    up[:, :, 12:] = roll[:, :, :-12]
    moved = np.asarray(NoteFeatures(lowest_pitch=LOWEST, beat_bits=0, pitch_position=False)(
        up, beat))
    inner = slice(24, NOTES - 24)  # away from the edges, where neighbours fall off the range
    np.testing.assert_array_equal(moved[:, :, 12:][:, :, inner], bare[:, :, :-12][:, :, inner])
