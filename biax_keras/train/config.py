"""How a model is trained (`TrainConfig`), and a run's config read and resolved once.

A config file is JSON with two optional sections, each checked key by key:
`{"model": {...BiaxialConfig...}, "train": {...TrainConfig...}}`. The note
range, steps per quarter and play-only flag of the model come from the
prepared data's meta.json; a config that names other values is refused.
`resolve_config` turns a file or dict, the data's meta and the command
line's overrides into the pair `(BiaxialConfig, TrainConfig)` that the
rest of training is handed whole.
"""

import dataclasses
import json
import os
import typing

from biax_keras.errors import UserError
from biax_keras.nn.config import BiaxialConfig, ConfigSection

# Model config keys that describe the data rather than the network: they are
# read from the prepared folder's meta.json.
DATA_KEYS = ("lowest_pitch", "num_notes", "steps_per_quarter", "play_only")


@dataclasses.dataclass(frozen=True)
class TrainConfig(ConfigSection):
    """How a model is trained.

    Attributes:
        epochs: epochs to train (counted across resumes).
        batch_size: windows per batch (global, across devices).
        window: steps predicted per window.
        steps_per_epoch: batches per epoch; None means one pass over the
            pieces of the train split (one random window of each).
        validation_steps: batches of validation per epoch; None means every
            whole window of the valid split.
        learning_rate: Adam's learning rate.
        clipnorm: gradients are clipped to this global norm; None turns it off.
        seed: seed of weight initialization, dropout and the data stream.
        transpose: random transposition of training windows.
        image_every: epochs between piano-roll images of the model's output on
            a fixed validation window (0: never).
        sample_every: epochs between sampled pieces (image and audio) in
            TensorBoard (0: never).
        sample_steps: steps of each sampled piece.
        patience: stop after this many epochs without a better valid frame
            NLL, keeping the best weights; None trains every epoch.
        backup_every: batches between backups; None backs up at the end of
            every epoch.
        mixed_precision: compute in bfloat16 (CPU) or float16 (GPU) with
            float32 weights; the saved model computes in float32.
        lr_decay_patience: multiply the learning rate by `lr_decay_factor`
            after this many epochs without a better valid frame NLL (Keras's
            ReduceLROnPlateau); None keeps it constant.
        lr_decay_factor: what the learning rate is multiplied by on a plateau.
        min_learning_rate: the learning rate is never decayed below this.
        weight_decay: decoupled weight decay of Adam (AdamW's); 0 for none.
        ema: decay of an exponential moving average of the weights (e.g.
            0.999), kept by the optimizer; validation, checkpoints and
            model.keras use the averaged weights. None trains without one.
        data_weights: with several datasets (`--data A --data B`), each
            one's share of the training windows, in the order given (scaled
            to sum to 1); None gives every dataset the same share.
    """

    epochs: int = 100
    batch_size: int = 10
    window: int = 128
    steps_per_epoch: typing.Optional[int] = None
    validation_steps: typing.Optional[int] = None
    learning_rate: float = 1e-3
    clipnorm: typing.Optional[float] = 1.0
    seed: int = 0
    transpose: bool = True
    image_every: int = 1
    sample_every: int = 5
    sample_steps: int = 128
    patience: typing.Optional[int] = None
    backup_every: typing.Optional[int] = None
    mixed_precision: bool = False
    lr_decay_patience: typing.Optional[int] = None
    lr_decay_factor: float = 0.5
    min_learning_rate: float = 1e-5
    weight_decay: float = 0.0
    ema: typing.Optional[float] = None
    data_weights: typing.Optional[typing.Tuple[float, ...]] = None

    SECTION = "train"

    def __post_init__(self):
        for name in ("epochs", "batch_size", "window", "sample_steps"):
            _require(getattr(self, name) >= 1, f"train.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("steps_per_epoch", "validation_steps", "patience", "backup_every",
                     "lr_decay_patience"):
            value = getattr(self, name)
            _require(value is None or value >= 1,
                     f"train.{name} must be at least 1 or null, got {value}")
        for name in ("image_every", "sample_every"):
            _require(getattr(self, name) >= 0,
                     f"train.{name} must be 0 (never) or more, got {getattr(self, name)}")
        _require(self.learning_rate > 0, f"train.learning_rate must be positive, got {self.learning_rate}")
        _require(self.clipnorm is None or self.clipnorm > 0,
                 f"train.clipnorm must be positive or null, got {self.clipnorm}")
        _require(0 < self.lr_decay_factor < 1,
                 f"train.lr_decay_factor must be between 0 and 1, got {self.lr_decay_factor}")
        _require(0 <= self.min_learning_rate <= self.learning_rate,
                 f"train.min_learning_rate must be between 0 and the learning rate "
                 f"{self.learning_rate}, got {self.min_learning_rate}")
        _require(self.weight_decay >= 0,
                 f"train.weight_decay must be 0 or more, got {self.weight_decay}")
        _require(self.ema is None or 0 < self.ema < 1,
                 f"train.ema must be between 0 and 1 (e.g. 0.999) or null, got {self.ema}")
        if self.data_weights is not None:
            weights = tuple(float(w) for w in self.data_weights)
            _require(weights and all(w > 0 for w in weights),
                     f"train.data_weights must be positive numbers, got {list(weights)}")
            object.__setattr__(self, "data_weights", weights)



def _require(condition, message):
    if not condition:
        raise UserError(message)


def read_config(config):
    """The raw sections of a run config.

    Args:
        config: None (defaults), a path to a JSON file, or a dict
            `{"model": {...}, "train": {...}}` (both sections optional).

    Returns:
        `(model_values, train_values)`: dicts of the keys given, not yet checked.

    Raises:
        UserError: an unreadable file, invalid JSON or an unknown section.
    """
    if config is None:
        return {}, {}
    if isinstance(config, (str, os.PathLike)):
        try:
            with open(config) as f:
                config = json.load(f)
        except OSError as e:
            raise UserError(f"cannot read config {config}: {e.strerror}") from None
        except ValueError as e:
            raise UserError(f"config {config} is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise UserError(f"a config must be a JSON object with 'model' and 'train' sections, "
                        f"got {type(config).__name__}")
    unknown = sorted(set(config) - {"model", "train"})
    if unknown:
        raise UserError(f"unknown config section(s) {', '.join(unknown)}; "
                        "a config has only 'model' and 'train'")
    model_values, train_values = config.get("model", {}), config.get("train", {})
    for name, values in (("model", model_values), ("train", train_values)):
        if not isinstance(values, dict):
            raise UserError(f"the {name!r} config must be a JSON object, got {type(values).__name__}")
    return dict(model_values), dict(train_values)


def resolve_config(config=None, meta=None, overrides=None, styles=None):
    """The model and train configs of a run.

    Args:
        config: as for `read_config`.
        meta: the prepared data's meta (from `data.load_meta`); its note range,
            steps per quarter and play-only flag become the model's.
        overrides: dict of train keys (e.g. from command-line flags) that
            replace the file's values; None values are ignored.
        styles: the styles of the datasets trained on, in order; two or more
            make a style model of them, unless the config names its own
            `styles` (which must then hold every one of them).

    Returns:
        `(BiaxialConfig, TrainConfig)`.

    Raises:
        UserError: for unknown keys, wrong types, or a model config whose data
            keys disagree with the data.
    """
    model_values, train_values = read_config(config)
    train_values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    train_config = TrainConfig.from_dict(train_values)
    BiaxialConfig.from_dict(model_values)  # checks keys and types before the data
    if styles is not None:
        styles = list(dict.fromkeys(styles))
        named = model_values.get("styles")
        if named is None and len(styles) > 1:
            model_values = {**model_values, "styles": styles}
        elif named is not None and not set(styles) <= set(named):
            missing = ", ".join(s for s in styles if s not in named)
            raise UserError(f"the model's styles are {', '.join(named)}; the data's style "
                            f"{missing} is not one of them (prepare it with --style NAME, "
                            f"one of the model's)")
    if meta is not None:
        model_values = _with_data_range(model_values, meta)
    return BiaxialConfig.from_dict(model_values), train_config


def _with_data_range(model_values, meta):
    values = dict(model_values)
    data = {key: meta[key] for key in DATA_KEYS if key in meta}
    data["play_only"] = bool(data.get("play_only", False))
    for key, value in data.items():
        given = values.get(key)
        if key == "play_only":
            # Training play alone on data with articulation is a choice (the
            # network is then shown no articulation); training articulation
            # on data without it would teach "never".
            if given is False and value:
                raise UserError("the config says play_only false, but the data has no "
                                "articulation (prepared play-only); set play_only true")
            values[key] = bool(given) or value
        elif given is not None and given != value:
            flag = "--" + key.replace("_", "-")
            raise UserError(f"the config says {key} {given} but the data was prepared with "
                            f"{value}; remove {key} from the config or prepare the data "
                            f"with {flag} {given}")
        else:
            values[key] = value
    return values


def config_to_dict(model_config, train_config):
    """The JSON form of a run config (what config.json holds)."""
    return {"model": model_config.to_dict(), "train": train_config.to_dict()}


def _hparam_value(value):
    if isinstance(value, dict):  # a model's own sampling controls
        return ",".join(f"{k}={v}" for k, v in sorted(value.items())) or "none"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if value is None:
        return "none"
    return value


def hparams_of(model_config, train_config):
    """Flat hyperparameters of a run, for the TensorBoard hparams dashboard."""
    values = {f"model.{k}": _hparam_value(v) for k, v in model_config.to_dict().items()}
    values.update({f"train.{k}": _hparam_value(v) for k, v in train_config.to_dict().items()})
    return values


def _config_with_init(config, init_config):
    """The run config with the network sizes of the model started from."""
    model_values, train_values = read_config(config)
    for key in ("time_units", "note_units", "beat_bits", "pitch_position", "styles",
                "style_units"):
        ours = getattr(init_config, key)
        given = model_values.get(key, ours)
        if (list(given) if isinstance(given, (list, tuple)) else given) != (
                list(ours) if isinstance(ours, tuple) else ours):
            raise UserError(f"the config's {key} {given} differs from the --init model's "
                            f"{list(ours) if isinstance(ours, tuple) else ours}; remove it")
        model_values[key] = list(ours) if isinstance(ours, tuple) else ours
    return {"model": model_values, "train": train_values}
