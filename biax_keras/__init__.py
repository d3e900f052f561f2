"""biax_keras: the biaxial recurrent network for polyphonic music, in Keras 3.

    import biax_keras
    model = biax_keras.load_model("runs/bach")
    roll = biax_keras.generate(model, steps=480, seed=1)

`load_model` and `generate` import TensorFlow when called, so `import
biax_keras` itself stays light (the command line checks its arguments before
TensorFlow's seconds of start-up). The custom Keras classes are still
registered the way a Keras package registers them: as soon as Keras is
imported, before or after this package, so that

    import biax_keras, keras
    model = keras.saving.load_model("saved_models/bach/model.keras", safe_mode=True)

works without naming `custom_objects`.
"""

import importlib as _importlib
import importlib.abc as _importlib_abc
import importlib.util as _importlib_util
import os as _os
import sys as _sys

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"

# The module whose import registers every custom class with Keras
# (`@keras.saving.register_keras_serializable(package="biax_keras")`).
_REGISTERING_MODULE = "biax_keras.nn.model"


class _RegisterWhenKerasLoads(_importlib_abc.MetaPathFinder):
    """Imports `_REGISTERING_MODULE` right after `keras` itself has loaded.

    Finds nothing itself: for `keras` it asks the other finders for the real
    spec and wraps its loader, so that Keras loads exactly as it would, and
    then our classes are registered. It removes itself once used.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        if self in _sys.meta_path:
            _sys.meta_path.remove(self)
        spec = _importlib_util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


class _RegisteringLoader:
    """A module loader that registers our Keras classes after running the real one."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):  # everything else is the real loader's
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        if not _importing_the_network():
            _importlib.import_module(_REGISTERING_MODULE)


def _importing_the_network():
    """Whether Keras is loading for one of our own network modules, mid-import.

    Then the registering module must not be imported now (it imports that
    very module, half made); the classes register as their modules finish.
    """
    for name, module in list(_sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        if name.startswith(__name__ + ".") and getattr(spec, "_initializing", False):
            return True
    return False


def _register_with_keras():
    if "keras" in _sys.modules:
        _importlib.import_module(_REGISTERING_MODULE)
    elif not any(isinstance(f, _RegisterWhenKerasLoads) for f in _sys.meta_path):
        _sys.meta_path.insert(0, _RegisterWhenKerasLoads())


_register_with_keras()

# The package is arranged by pipeline stage (music/, data/, nn/, generation/,
# train/, app/); these modules were once at its top. Their old import paths
# (`from biax_keras import representation`, `from biax_keras.primer import
# read_primer`, ...) import the same module objects from their new homes.
_MOVED = {
    "representation": "biax_keras.music.representation",
    "primer": "biax_keras.music.primer",
    "sampling": "biax_keras.generation.sampling",
    "compose": "biax_keras.generation.compose",
    "export": "biax_keras.generation.export",
    "model": "biax_keras.nn.model",
    "config": "biax_keras.nn.config",
    "beam": "biax_keras.data.beam",
    "runs": "biax_keras.train.runs",
    "evaluate": "biax_keras.app.evaluate",
    "cli": "biax_keras.app.cli",
    "studio": "biax_keras.app.studio",
}


class _MovedModuleFinder(_importlib_abc.MetaPathFinder, _importlib_abc.Loader):
    """Finds `biax_keras.OLD` for a moved module: the module at its new home."""

    def find_spec(self, name, path=None, target=None):
        package, _, old = name.rpartition(".")
        if package != __name__ or old not in _MOVED:
            return None
        return _importlib_util.spec_from_loader(name, self)

    def create_module(self, spec):
        return _importlib.import_module(_MOVED[spec.name.rpartition(".")[2]])

    def exec_module(self, module):
        pass  # already executed at its new home


def __getattr__(name):  # `biax_keras.representation` after `import biax_keras`
    if name in _MOVED:
        return _importlib.import_module(_MOVED[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if not any(isinstance(f, _MovedModuleFinder) for f in _sys.meta_path):
    _sys.meta_path.append(_MovedModuleFinder())

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
    kind, path = model_file(path)
    if kind == "saved_model":
        from biax_keras.generation import export

        return export.ExportedModel(path)
    return _load_keras_file(path)


def model_file(path):
    """What `load_model` would load from `path`, found without loading anything.

    Args:
        path: a `.keras` file, a run folder or a SavedModel folder.

    Returns:
        `(kind, path)`: `("keras", FILE.keras)` or `("saved_model", FOLDER)`.

    Raises:
        UserError: the path does not exist or is none of these.
    """
    from biax_keras.errors import UserError

    path = _os.fspath(path)
    if not _os.path.exists(path):
        raise UserError(f"model {path} does not exist; give a .keras file, a run folder "
                        f"(holding {RUN_MODEL_FILE}) or a SavedModel folder from `biax export`")
    if _os.path.isdir(path):
        if _os.path.isfile(_os.path.join(path, "saved_model.pb")):
            return "saved_model", path
        inside = _os.path.join(path, RUN_MODEL_FILE)
        if not _os.path.isfile(inside):
            best = _os.path.join(path, "checkpoints", "best.keras")
            if _os.path.isfile(best):
                raise UserError(f"{path} is a run that has not finished (no {RUN_MODEL_FILE}); "
                                f"its best model so far is {best}: give that file")
            raise UserError(f"{path} is a folder without {RUN_MODEL_FILE} or saved_model.pb: not "
                            f"a finished run folder or an exported model")
        path = inside
    if not path.endswith(".keras"):
        raise UserError(f"{path} is not a model: expected a .keras file, a run folder or a "
                        f"SavedModel folder")
    return "keras", path


def model_config(path):
    """The `BiaxialConfig` of a model, read without TensorFlow or Keras.

    The command line checks a request against the model (its resolution, its
    note range, whether it learned articulation) before TensorFlow's start-up.

    Args:
        path: a `.keras` file, a run folder or a SavedModel from `biax export`.

    Returns:
        A `config.BiaxialConfig`.

    Raises:
        UserError: the path is not a model, or its config cannot be read.
    """
    import json
    import zipfile

    from biax_keras.errors import UserError
    from biax_keras.nn.config import BiaxialConfig

    kind, path = model_file(path)
    if kind == "keras":
        _check_keras_archive(path)
    try:
        if kind == "saved_model":
            from biax_keras.generation.export import CONFIG_FILE

            with open(_os.path.join(path, CONFIG_FILE)) as f:
                values = json.load(f)["config"]
        else:
            with zipfile.ZipFile(path) as archive:
                values = json.loads(archive.read("config.json"))["config"]["config"]
        return BiaxialConfig.from_dict(values)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, UserError) as e:
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        raise UserError(f"{path} is not a biaxial model written by biax_keras ({reason})") from None


def _check_keras_archive(path):
    """A `.keras` file is a zip archive; say so plainly when it is not one."""
    import zipfile

    from biax_keras.errors import UserError

    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not a Keras model file (a .keras file is a zip archive, and "
                        f"this one is not: damaged, cut short, or another kind of file)")


def _load_keras_file(path, compile=False):
    import zipfile

    import keras

    from biax_keras.errors import UserError
    from biax_keras.nn import model as model_lib  # registers the custom classes

    _check_keras_archive(path)
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=compile)
    except (OSError, ValueError, TypeError, KeyError, zipfile.BadZipFile) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path} cannot be loaded as a Keras model ({reason[:200]})") from None
    if not isinstance(model, model_lib.BiaxialModel):
        raise UserError(f"{path} holds a {type(model).__name__}, not a biaxial model")
    return model


def generate(model, steps, **kwargs):
    """Compose one piece; see `biax_keras.generation.sampling.generate` for the arguments.

    Returns:
        np.uint8 roll `(primer steps + steps, notes, 2)`.
    """
    from biax_keras.generation import sampling

    return sampling.generate(model, steps, **kwargs)


def generate_batch(model, num_samples, steps, **kwargs):
    """Compose `num_samples` pieces in parallel; see `biax_keras.generation.sampling.generate_batch`.

    Returns:
        np.uint8 rolls `(num_samples, primer steps + steps, notes, 2)`.
    """
    from biax_keras.generation import sampling

    return sampling.generate_batch(model, num_samples, steps, **kwargs)
