"""SavedModel export with serving signatures, and the loader's wrapper for it.

    biax export --model runs/bach --out saved_models/bach

writes a SavedModel that any TensorFlow process can use without this package:

    loaded = tf.saved_model.load("exported/bach")
    roll = loaded.generate(steps=480, seed=1, num_samples=1, temperature=1.0,
                           conservativity=1.0, adaptive=False, min_pitch=0,
                           max_pitch=127)["roll"]

Signatures (all inputs required, as TF Serving wants; N is the model's
`num_notes`, fixed at export):

- `score(roll (B, T, N, 2) float32, beat (B, T) int32, target (B, T, N, 2)
  float32) -> {"probabilities": (B, T, N, 2)}`: the inputs of the Keras model
  (`roll` the steps before those predicted, `beat` the bar positions of the
  predicted steps, `target` the predicted steps) and its output.
- `generate(steps int32, seed int64, num_samples int32, temperature float32,
  conservativity float32, adaptive bool, min_pitch int32, max_pitch int32) ->
  {"roll": (K, steps, N, 2) uint8}`: new music in 4/4 (the default of
  `biax_keras.generate`). The inputs after `num_samples` are the fields of
  `sampling_controls.SamplingControls`, checked in the graph as they are in Python.
  The export records the version of its control set (`sampling_controls.VERSION`):
  a SavedModel written before `min_pitch` and `max_pitch` existed (version
  1) has the controls before them, and `biax_keras.load_model` composes with
  it as before.
- `generate_from_primer(` the same `, primer (P, N, 2) float32, primer_beat
  (P,) int32) -> {"roll": (K, P + steps, N, 2) uint8}`: continues a primer,
  which opens every sample; bar positions continue from the primer's last.

- A style model (`BiaxialConfig.styles`) has one input more in each of
  these: `style`, float32 `(S,)` in `generate` and `generate_from_primer`
  (the weights of its styles, in the order of `styles` in the config,
  summing to 1) and `(B, S)` in `score`.
- `sampling_defaults() -> {control: scalar}`: the model's own sampling
  controls (`BiaxialConfig.sampling`, the neutral ones where it has none),
  the values to give `generate` for music like its collection. A style
  model's takes its `style` weights, `(S,)`: each style may have controls of
  its own (`BiaxialConfig.style_sampling`), and a blend gets their mix
  (`SamplingControls.mix`).

`serving_default` is `score`. The model's config is written beside the
SavedModel's files as `assets.extra/biax_keras.json` (TF Serving ignores that
folder), which `biax_keras.load_model` reads back.

The generation signatures run the same compiled sampler as
`biax_keras.generate`, so the same seed gives the same roll in and out of the
package (on the same machine and TensorFlow version).
"""

import inspect
import json
import logging
import os
import shutil
import tempfile

import numpy as np

from biax_keras.errors import UserError
from biax_keras.files import umask
from biax_keras.sampling_controls import VERSION, SamplingControls

CONFIG_FILE = os.path.join("assets.extra", "biax_keras.json")
EXPORT_FORMAT = "biax_keras.saved_model"
EXPORT_VERSION = 1


def check_time_signature(time_signature):
    """An exported model composes in 4/4 only (its signatures fix the bar).

    Raises:
        UserError: for any other time signature, such as a 3/4 primer's.
    """
    from biax_keras.generation.sampling import DEFAULT_TIME_SIGNATURE

    if tuple(time_signature) != DEFAULT_TIME_SIGNATURE:
        raise UserError(f"an exported model generates in 4/4 only, not "
                        f"{time_signature[0]}/{time_signature[1]}; load the .keras model "
                        f"for other time signatures")


def _keyword_function(specs, body):
    """`body({name: tensor})` as a function of one keyword argument per spec.

    Serving wants flat, named inputs; building them from the specs lets a new
    sampling control reach the signatures without another line here.
    """

    def function(*values):
        return body(dict(zip([spec.name for spec in specs], values)))

    function.__signature__ = inspect.Signature([
        inspect.Parameter(spec.name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for spec in specs])
    return function


def _signatures(model, controls_version=VERSION):
    """The serving functions of `model`, traced: `{name: tf.function}`.

    The generation signatures take the controls of the control set
    `controls_version` (an older set gives the older signatures, which
    compose with the newer controls at their defaults).
    """
    import tensorflow as tf

    from biax_keras.generation import sampling
    from biax_keras.music import representation

    config = model.config
    notes = config.num_notes
    steps_per_bar = representation.bar_steps(
        sampling.DEFAULT_TIME_SIGNATURE, config.steps_per_quarter)
    # A sampler of its own, so the export does not share compiled functions
    # with (or grow the cache of) the sampler in-package generation uses.
    sample = sampling.Sampler(model).sample_function(notes)
    control_specs = SamplingControls.tensor_specs(controls_version)
    every_control = SamplingControls.tensor_specs()
    # The model's own (a style model's in its first style), for the controls an
    # older control set does not give.
    defaults = model.config.sampling_controls()
    specs = [tf.TensorSpec((), tf.int32, name="steps"), tf.TensorSpec((), tf.int64, name="seed"),
             tf.TensorSpec((), tf.int32, name="num_samples")] + list(control_specs.values())
    num_styles = len(config.styles or ())
    if num_styles:  # a style model's weights of its styles, after the controls
        specs.append(tf.TensorSpec((num_styles,), tf.float32, name="style"))
    primer_specs = [tf.TensorSpec((None, notes, 2), tf.float32, name="primer"),
                    tf.TensorSpec((None,), tf.int32, name="primer_beat")]

    def run(values, primer, primer_beat, checks=()):
        controls = {name: values[name] if name in control_specs
                    else tf.constant(getattr(defaults, name), spec.dtype)
                    for name, spec in every_control.items()}
        checks = list(checks) + [
            tf.debugging.assert_positive(values[name], message=f"{name} must be positive")
            for name in ["steps", "num_samples"]] + SamplingControls.graph_checks(
                {name: values[name] for name in control_specs})
        if num_styles:
            checks.append(tf.debugging.assert_non_negative(
                values["style"], message="style weights must not be negative"))
            checks.append(tf.debugging.assert_near(
                tf.reduce_sum(values["style"]), 1.0, atol=1e-3,
                message="style weights must sum to 1"))
        with tf.control_dependencies(checks):
            steps = tf.identity(values["steps"])
        style = values["style"] if num_styles else tf.zeros((0,), tf.float32)
        return sample(primer, primer_beat, steps, steps_per_bar, values["num_samples"],
                      values["seed"], controls, style)

    def new_music(values):
        return {"roll": run(values, tf.zeros((0, notes, 2)), tf.zeros((0,), tf.int32))}

    def continuation(values):
        primer, primer_beat = values["primer"], values["primer_beat"]
        new = run(values, primer, primer_beat, checks=[
            tf.debugging.assert_positive(tf.shape(primer)[0], message="the primer is empty"),
            tf.debugging.assert_equal(tf.shape(primer)[0], tf.shape(primer_beat)[0],
                                      message="primer and primer_beat differ in length")])
        opening = tf.broadcast_to(tf.cast(primer, tf.uint8)[None],
                                  tf.concat([[values["num_samples"]], tf.shape(primer)], axis=0))
        return {"roll": tf.concat([opening, new], axis=1)}

    generate = tf.function(_keyword_function(specs, new_music), input_signature=specs)
    generate_from_primer = tf.function(_keyword_function(specs + primer_specs, continuation),
                                       input_signature=specs + primer_specs)

    score_specs = [tf.TensorSpec((None, None, notes, 2), tf.float32, name="roll"),
                   tf.TensorSpec((None, None), tf.int32, name="beat"),
                   tf.TensorSpec((None, None, notes, 2), tf.float32, name="target")]
    if num_styles:
        score_specs.append(tf.TensorSpec((None, num_styles), tf.float32, name="style"))

    def scored(values):
        return {"probabilities": model(values, training=False)}

    score = tf.function(_keyword_function(score_specs, scored), input_signature=score_specs)

    if num_styles:
        # Each style's own controls, mixed for a blend as SamplingControls.mix does:
        # real numbers by weight, the rest from the heaviest style (the first of equals).
        own = [config.sampling_controls(np.eye(num_styles, dtype=np.float32)[i])
               for i in range(num_styles)]

        @tf.function(input_signature=[tf.TensorSpec((num_styles,), tf.float32, name="style")])
        def sampling_defaults(style):
            heaviest = tf.argmax(style)
            mixed = {}
            for name, spec in control_specs.items():
                values = tf.constant([getattr(c, name) for c in own], spec.dtype)
                mixed[name] = (tf.reduce_sum(style * values) / tf.reduce_sum(style)
                               if spec.dtype == tf.float32 else tf.gather(values, heaviest))
            return mixed
    else:
        @tf.function(input_signature=[])
        def sampling_defaults():
            return {name: tf.constant(getattr(defaults, name), spec.dtype)
                    for name, spec in control_specs.items()}

    functions = {"score": score, "generate": generate,
                 "generate_from_primer": generate_from_primer,
                 "sampling_defaults": sampling_defaults}
    for function in functions.values():
        function.get_concrete_function()  # ExportArchive wants them traced
    return functions


def export_model(model, out, overwrite=False, controls_version=VERSION):
    """Export a Keras `BiaxialModel` as a SavedModel with serving signatures.

    The SavedModel is written into a temporary folder beside `out`, then
    renamed, so `out` is never half-written.

    Args:
        model: a `BiaxialModel`.
        out: the folder to create (with its parent folders).
        overwrite: replace `out` if it exists.
        controls_version: the control set of the generation signatures
            (`controls.VERSION`, this package's; an older one writes what an
            older biax_keras wrote).

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

    functions = _signatures(model, controls_version)
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
                       "controls_version": controls_version,
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

        from biax_keras.nn.config import BiaxialConfig

        self.path = os.fspath(path)
        config_path = os.path.join(self.path, CONFIG_FILE)
        try:
            with open(config_path) as f:
                meta = json.load(f)
            if meta.get("format") != EXPORT_FORMAT:
                raise ValueError(f"format {meta.get('format')!r}")
            self.config = BiaxialConfig.from_dict(meta["config"])
            # Exports from before the control set had versions have its first.
            self.controls_version = int(meta.get("controls_version", 1))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UserError(f"{self.path} is a SavedModel but not one written by `biax export` "
                            f"({config_path}: {e})") from None
        self._loaded = tf.saved_model.load(self.path)

    def __call__(self, inputs, training=False):
        """Probabilities `(B, T, N, 2)` for the Keras model's inputs dict (see `score`)."""
        import tensorflow as tf

        extra = ({"style": tf.cast(inputs["style"], tf.float32)} if self.config.styles else {})
        return self._loaded.score(
            roll=tf.cast(inputs["roll"], tf.float32), beat=tf.cast(inputs["beat"], tf.int32),
            target=tf.cast(inputs["target"], tf.float32), **extra)["probabilities"]

    def generate_batch(self, num_samples, steps, seed, controls, primer, primer_beat,
                       time_signature, style=None):
        """`sampling.generate_batch` through the SavedModel's signatures (checked arguments).

        Raises:
            UserError: for a note count or time signature the export does not
                have (it is fixed to the model's notes and 4/4).
        """
        import tensorflow as tf

        check_time_signature(time_signature)
        if primer.shape[1] != self.config.num_notes:
            raise UserError(f"an exported model generates {self.config.num_notes} notes, "
                            f"not {primer.shape[1]}")
        known = SamplingControls.names(self.controls_version)
        defaults = self.config.sampling_controls(style)
        unknown = [name for name in SamplingControls.names()
                   if name not in known and getattr(controls, name) != getattr(defaults, name)]
        if unknown:
            flags = ", ".join("--" + name.replace("_", "-") for name in unknown)
            raise UserError(f"{self.path} was exported before {flags} existed; export the "
                            f"model again with `biax export` to use it")
        values = dict(steps=tf.constant(steps, tf.int32), seed=tf.constant(seed, tf.int64),
                      num_samples=tf.constant(num_samples, tf.int32),
                      **controls.tensors(self.controls_version))
        if self.config.styles:
            values["style"] = tf.constant(style, tf.float32)
        if len(primer) == 0:
            out = self._loaded.generate(**values)
        else:
            out = self._loaded.generate_from_primer(
                primer=tf.constant(primer, tf.float32),
                primer_beat=tf.constant(primer_beat, tf.int32), **values)
        return np.asarray(out["roll"])
