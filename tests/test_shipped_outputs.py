"""The shipped models compute what they computed when they were shipped.

`tests/fixtures/shipped_outputs.npz` holds, for saved_models/bach and
saved_models/jsb_chorales, the probabilities of a fixed input and the samples
of fixed seeds and controls, written by `tests/fixtures/make_shipped_outputs.py`
(see its docstring for exactly what and how) with the code that shipped them.
A change to the layers, the model or the sampler must reproduce them: the
same probabilities to 1e-5 and the same samples, bit for bit.
"""

import os
import sys

import numpy as np
import pytest

import biax_keras

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fixtures"))
import make_shipped_outputs as fixture  # noqa: E402

EXPECTED = np.load(fixture.OUT)


@pytest.fixture(scope="module", params=fixture.MODELS)
def shipped(request):
    name = request.param
    return name, biax_keras.load_model(os.path.join(fixture.ROOT, "saved_models", name))


def _roll(name, key):
    return fixture.unpack(EXPECTED[f"{name}/{key}"], tuple(EXPECTED[f"{name}/{key}_shape"]))


def test_probabilities_of_a_fixed_input(shipped):
    name, model = shipped
    inputs = fixture.fixed_inputs(model.config.num_notes)
    inputs = {k: v.astype(np.float32) if k != "beat" else v for k, v in inputs.items()}
    np.testing.assert_allclose(np.asarray(model(inputs, training=False)),
                               EXPECTED[f"{name}/probabilities"], atol=1e-5, rtol=0)


def test_stepping_scores_the_fixed_input_alike(shipped):
    # The sampler's step function, fed the target, gives the same probabilities.
    from biax_keras.generation import sampling

    name, model = shipped
    inputs = fixture.fixed_inputs(model.config.num_notes)
    np.testing.assert_allclose(
        sampling.score(model, inputs["roll"], inputs["beat"], inputs["target"]),
        EXPECTED[f"{name}/probabilities"], atol=1e-5, rtol=0)


def test_samples_of_fixed_seeds_and_controls(shipped):
    name, model = shipped
    np.testing.assert_array_equal(biax_keras.generate(model, 32, seed=7), _roll(name, "sample"))
    np.testing.assert_array_equal(
        biax_keras.generate_batch(model, 2, 24, seed=3, temperature=0.8, conservativity=1.5,
                                  adaptive=True),
        _roll(name, "controls"))
    primer, beat = fixture.fixed_primer(model.config.num_notes)
    np.testing.assert_array_equal(fixture.unpack(EXPECTED[f"{name}/primer"], primer.shape), primer)
    np.testing.assert_array_equal(EXPECTED[f"{name}/primer_beat"], beat)
    np.testing.assert_array_equal(biax_keras.generate(model, 16, seed=5, primer=(primer, beat)),
                                  _roll(name, "primed"))


@pytest.mark.slow
def test_exported_generate_signature(shipped, tmp_path):
    import tensorflow as tf

    from biax_keras.generation.export import export_model

    name, model = shipped
    first_controls = dict(
        steps=tf.constant(24), seed=tf.constant(3, tf.int64), temperature=tf.constant(1.0),
        conservativity=tf.constant(1.0), adaptive=tf.constant(False), num_samples=tf.constant(2))
    export_model(model, tmp_path / name)
    loaded = tf.saved_model.load(str(tmp_path / name))
    roll = loaded.generate(**first_controls, min_pitch=tf.constant(0),
                           max_pitch=tf.constant(127))["roll"].numpy()
    np.testing.assert_array_equal(roll, _roll(name, "exported"))
    # An export of the first control set (what biax_keras wrote before the
    # pitch range existed) is called as it always was, and composes the same.
    export_model(model, tmp_path / "v1", controls_version=1)
    older = tf.saved_model.load(str(tmp_path / "v1"))
    np.testing.assert_array_equal(older.generate(**first_controls)["roll"].numpy(),
                                  _roll(name, "exported"))
