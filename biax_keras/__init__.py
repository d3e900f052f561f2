"""biax_keras: the biaxial recurrent network for polyphonic music, in Keras 3.

    import biax_keras
    model = biax_keras.load_model("runs/bach")
    roll = biax_keras.generate(model, steps=480, seed=1)

`load_model` and `generate` import TensorFlow when called, so `import
biax_keras` itself stays light.
"""

import os as _os

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"

# What a run folder holds once training has finished.
RUN_MODEL_FILE = "model.keras"


def load_model(path):
    """Load a model to generate with or score.

    Args:
        path: a `.keras` file, a run folder holding `model.keras`, or a
            SavedModel folder written by `biax export`.

    Returns:
        A `BiaxialModel` (for `.keras` files and run folders) or an
        `export.ExportedModel` (for SavedModels). Both have `.config` and are
        accepted by `generate` and by `evaluate`.

    Raises:
        UserError: the path does not exist or is not one of the above.
    """
    from biax_keras.errors import UserError

    path = _os.fspath(path)
    if not _os.path.exists(path):
        raise UserError(f"model {path} does not exist; give a .keras file, a run folder "
                        f"(holding {RUN_MODEL_FILE}) or a SavedModel folder from `biax export`")
    if _os.path.isdir(path):
        from biax_keras import export

        if export.is_exported(path):
            return export.ExportedModel(path)
        inside = _os.path.join(path, RUN_MODEL_FILE)
        if not _os.path.isfile(inside):
            raise UserError(f"{path} is a folder without {RUN_MODEL_FILE} or saved_model.pb: not "
                            f"a finished run folder or an exported model")
        path = inside
    return _load_keras_file(path)


def _load_keras_file(path):
    import zipfile

    import keras

    from biax_keras import model as model_lib  # registers the custom classes
    from biax_keras.errors import UserError

    if not path.endswith(".keras"):
        raise UserError(f"{path} is not a model: expected a .keras file, a run folder or a "
                        f"SavedModel folder")
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except (OSError, ValueError, TypeError, KeyError, zipfile.BadZipFile) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path} cannot be loaded as a Keras model ({reason[:200]})") from None
    if not isinstance(model, model_lib.BiaxialModel):
        raise UserError(f"{path} holds a {type(model).__name__}, not a biaxial model")
    return model


def generate(model, steps, **kwargs):
    """Compose one piece; see `biax_keras.sampling.generate` for the arguments.

    Returns:
        np.uint8 roll `(primer steps + steps, notes, 2)`.
    """
    from biax_keras import sampling

    return sampling.generate(model, steps, **kwargs)


def generate_batch(model, num_samples, steps, **kwargs):
    """Compose `num_samples` pieces in parallel; see `biax_keras.sampling.generate_batch`.

    Returns:
        np.uint8 rolls `(num_samples, primer steps + steps, notes, 2)`.
    """
    from biax_keras import sampling

    return sampling.generate_batch(model, num_samples, steps, **kwargs)
