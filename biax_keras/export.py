"""SavedModel export with serving signatures, and the loader's wrapper for it.

    biax export --model runs/bach --out saved_models/bach

writes a SavedModel that any TensorFlow process can use without this package:

    loaded = tf.saved_model.load("saved_models/bach")
    roll = loaded.generate(steps=480, seed=1, temperature=1.0, conservativity=1.0,
                           adaptive=False, num_samples=1)["roll"]

Signatures (all inputs required, as TF Serving wants; N is the model's
`num_notes`, fixed at export):

- `score(roll (B, T, N, 2) float32, beat (B, T) int32, target (B, T, N, 2)
  float32) -> {"probabilities": (B, T, N, 2)}`: the inputs of the Keras model
  (`roll` the steps before those predicted, `beat` the bar positions of the
  predicted steps, `target` the predicted steps) and its output.
- `generate(steps int32, seed int64, temperature float32, conservativity
  float32, adaptive bool, num_samples int32) -> {"roll": (K, steps, N, 2)
  uint8}`: new music in 4/4 (the default of `biax_keras.generate`).
- `generate_from_primer(` the same `, primer (P, N, 2) float32, primer_beat
  (P,) int32) -> {"roll": (K, P + steps, N, 2) uint8}`: continues a primer,
  which opens every sample; bar positions continue from the primer's last.

`serving_default` is `score`. The model's config is written beside the
SavedModel's files as `assets.extra/biax_keras.json` (TF Serving ignores that
folder), which `biax_keras.load_model` reads back.

The generation signatures run the same compiled sampler as
`biax_keras.generate`, so the same seed gives the same roll in and out of the
package (on the same machine and TensorFlow version).
"""

import json
import logging
import os
import shutil
import tempfile

import numpy as np

from biax_keras.errors import UserError
from biax_keras.files import umask

CONFIG_FILE = os.path.join("assets.extra", "biax_keras.json")
EXPORT_FORMAT = "biax_keras.saved_model"
EXPORT_VERSION = 1


def _signatures(model):
    """The serving functions of `model`, traced: `{name: tf.function}`."""
    import tensorflow as tf

    import biax_keras.generate as generate_lib
    from biax_keras import representation

    config = model.config
    notes = config.num_notes
    steps_per_bar = representation.bar_steps(
        generate_lib.DEFAULT_TIME_SIGNATURE, config.steps_per_quarter)
    # A decoder of its own, so the export does not share compiled functions
    # with (or grow the cache of) the decoder in-package generation uses.
    sample = generate_lib.StepDecoder(model).sample_function(notes)

    def check(steps, temperature, conservativity, num_samples):
        return [
            tf.debugging.assert_positive(steps, message="steps must be positive"),
            tf.debugging.assert_positive(temperature, message="temperature must be positive"),
            tf.debugging.assert_positive(conservativity,
                                         message="conservativity must be positive"),
            tf.debugging.assert_positive(num_samples, message="num_samples must be positive"),
        ]

    controls = [
        tf.TensorSpec((), tf.int32, name="steps"),
        tf.TensorSpec((), tf.int64, name="seed"),
        tf.TensorSpec((), tf.float32, name="temperature"),
        tf.TensorSpec((), tf.float32, name="conservativity"),
        tf.TensorSpec((), tf.bool, name="adaptive"),
        tf.TensorSpec((), tf.int32, name="num_samples"),
    ]

    @tf.function(input_signature=controls)
    def generate(steps, seed, temperature, conservativity, adaptive, num_samples):
        with tf.control_dependencies(check(steps, temperature, conservativity, num_samples)):
            beat = tf.range(steps) % steps_per_bar
        roll = sample(tf.zeros((0, notes, 2)), beat, seed, temperature,
                      tf.fill((num_samples,), conservativity), adaptive)
        return {"roll": roll}

    @tf.function(input_signature=controls + [
        tf.TensorSpec((None, notes, 2), tf.float32, name="primer"),
        tf.TensorSpec((None,), tf.int32, name="primer_beat"),
    ])
    def generate_from_primer(steps, seed, temperature, conservativity, adaptive, num_samples,
                             primer, primer_beat):
        checks = check(steps, temperature, conservativity, num_samples) + [
            tf.debugging.assert_positive(tf.shape(primer)[0], message="the primer is empty"),
            tf.debugging.assert_equal(tf.shape(primer)[0], tf.shape(primer_beat)[0],
                                      message="primer and primer_beat differ in length"),
        ]
        with tf.control_dependencies(checks):
            offset = primer_beat[-1] + 1
            beat = tf.concat([primer_beat, (offset + tf.range(steps)) % steps_per_bar], axis=0)
        new = sample(primer, beat, seed, temperature,
                     tf.fill((num_samples,), conservativity), adaptive)
        opening = tf.broadcast_to(tf.cast(primer, tf.uint8)[None],
                                  tf.concat([[num_samples], tf.shape(primer)], axis=0))
        return {"roll": tf.concat([opening, new], axis=1)}

    @tf.function(input_signature=[
        tf.TensorSpec((None, None, notes, 2), tf.float32, name="roll"),
        tf.TensorSpec((None, None), tf.int32, name="beat"),
        tf.TensorSpec((None, None, notes, 2), tf.float32, name="target"),
    ])
    def score(roll, beat, target):
        inputs = {"roll": roll, "beat": beat, "target": target}
        return {"probabilities": model(inputs, training=False)}

    functions = {"score": score, "generate": generate,
                 "generate_from_primer": generate_from_primer}
    for function in functions.values():
        function.get_concrete_function()  # ExportArchive wants them traced
    return functions


def export_model(model, out, overwrite=False):
    """Export a Keras `BiaxialModel` as a SavedModel with serving signatures.

    The SavedModel is written into a temporary folder beside `out`, then
    renamed, so `out` is never half-written.

    Args:
        model: a `BiaxialModel`.
        out: the folder to create (with its parent folders).
        overwrite: replace `out` if it exists.

    Returns:
        dict: `out`, `signatures` and the model's `config`.

    Raises:
        UserError: `out` exists (without `overwrite`) or a file is in the
            way of its parent folder.
    """
    import keras

    out = os.path.abspath(os.fspath(out))
    parent = os.path.dirname(out)
    if os.path.exists(out) and not overwrite:
        raise UserError(f"{out} already exists; remove it, choose another --out, or add --overwrite")
    if not hasattr(model, "note_axis"):
        raise UserError("only a Keras biaxial model (a .keras file or run folder) can be exported")
    try:
        os.makedirs(parent, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"cannot export to {out}: a file is in the way of its folder {parent}") from None

    functions = _signatures(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, function in functions.items():  # `score` first: it becomes serving_default
        archive.add_endpoint(name, function)
    scratch = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.", dir=parent)
    # TensorFlow logs "Assets written to <scratch>" at INFO; the folder is temporary.
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(max(level, logging.WARNING))
    try:
        archive.write_out(scratch, verbose=False)
        tf_logger.setLevel(level)
        os.makedirs(os.path.join(scratch, "assets.extra"), exist_ok=True)
        with open(os.path.join(scratch, CONFIG_FILE), "w") as f:
            json.dump({"format": EXPORT_FORMAT, "version": EXPORT_VERSION,
                       "config": model.config.to_dict()}, f, indent=2)
        os.chmod(scratch, 0o777 & ~umask())  # mkdtemp's 0700 is not what a user expects
        if os.path.exists(out):
            shutil.rmtree(out)
        os.replace(scratch, out)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    finally:
        tf_logger.setLevel(level)
    return {"out": out, "signatures": list(functions), "config": model.config.to_dict()}


def is_exported(path):
    """Whether `path` is a SavedModel folder."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb"))


class ExportedModel:
    """A SavedModel from `biax export`, loaded: scores and generates like a `BiaxialModel`.

    `biax_keras.generate` and `biax_keras.evaluate` accept it in place of a
    Keras model.

    Args:
        path: the SavedModel folder.

    Attributes:
        config: the model's `BiaxialConfig`.
        path: the folder it was loaded from.

    Raises:
        UserError: the folder is a SavedModel not made by `biax export`.
    """

    def __init__(self, path):
        import tensorflow as tf

        from biax_keras.model import BiaxialConfig

        self.path = os.fspath(path)
        config_path = os.path.join(self.path, CONFIG_FILE)
        try:
            with open(config_path) as f:
                meta = json.load(f)
            if meta.get("format") != EXPORT_FORMAT:
                raise ValueError(f"format {meta.get('format')!r}")
            self.config = BiaxialConfig.from_dict(meta["config"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UserError(f"{self.path} is a SavedModel but not one written by `biax export` "
                            f"({config_path}: {e})") from None
        self._loaded = tf.saved_model.load(self.path)

    def __call__(self, inputs, training=False):
        """Probabilities `(B, T, N, 2)` for the Keras model's inputs dict (see `score`)."""
        import tensorflow as tf

        return self._loaded.score(
            roll=tf.cast(inputs["roll"], tf.float32), beat=tf.cast(inputs["beat"], tf.int32),
            target=tf.cast(inputs["target"], tf.float32))["probabilities"]

    def generate_batch(self, num_samples, steps, seed=0, temperature=1.0, conservativity=1.0,
                       adaptive=False, primer=None, num_notes=None, primer_beat=None,
                       time_signature=(4, 4)):
        """`biax_keras.generate_batch` through the SavedModel's signatures.

        Raises:
            UserError: for a note count or time signature the export does not
                have (it is fixed to the model's notes and 4/4).
        """
        import tensorflow as tf

        import biax_keras.generate as generate_lib

        if tuple(time_signature) != generate_lib.DEFAULT_TIME_SIGNATURE:
            raise UserError("an exported model generates in 4/4 only; load the .keras model "
                            "for other time signatures")
        if num_notes is not None and int(num_notes) != self.config.num_notes:
            raise UserError(f"an exported model generates {self.config.num_notes} notes, "
                            f"not {num_notes}")
        notes, primer, primer_beat = generate_lib._checked_primer(
            self.config, primer, primer_beat, num_notes)
        if primer.shape[1] != self.config.num_notes:
            raise UserError(f"the primer has {primer.shape[1]} notes; this exported model "
                            f"takes {self.config.num_notes}")
        controls = dict(
            steps=tf.constant(steps, tf.int32), seed=tf.constant(seed, tf.int64),
            temperature=tf.constant(temperature, tf.float32),
            conservativity=tf.constant(conservativity, tf.float32),
            adaptive=tf.constant(bool(adaptive)), num_samples=tf.constant(num_samples, tf.int32))
        if len(primer) == 0:
            out = self._loaded.generate(**controls)
        else:
            out = self._loaded.generate_from_primer(
                primer=tf.constant(primer, tf.float32),
                primer_beat=tf.constant(primer_beat, tf.int32), **controls)
        return np.asarray(out["roll"])
