"""BiaxialModel: the four layers assembled, with its loss, metrics and config.

    config = BiaxialConfig()                    # the default, full-size model
    model = build_model(config)                 # compiled, ready for model.fit
    probabilities = model(inputs)               # (B, T, N, 2)

The loss is the frame negative log-likelihood in nats: binary cross-entropy of
play on every note plus, where the target note plays, of articulate, summed
over notes and averaged over steps. So the loss Keras prints *is* the frame
NLL that papers report.
"""

import dataclasses
import json
import typing

import keras
from keras import ops

from biax_keras.errors import UserError
from biax_keras.layers import (
    NoteAxisLSTM,
    NoteFeatures,
    PlayArticulateHead,
    TimeAxisLSTM,
    note_feature_size,
)

# Probabilities are clipped this far from 0 and 1 before taking logs, as
# Keras's own binary cross-entropy does; it bounds a note's loss at ~16 nats.
EPSILON = 1e-7


@dataclasses.dataclass(frozen=True)
class BiaxialConfig:
    """What a biaxial model is: sizes, note range and representation.

    Attributes:
        time_units: units of each time-axis LSTM.
        note_units: units of each note-axis LSTM.
        dropout: dropout rate after every LSTM during training.
        lowest_pitch: MIDI pitch of note index 0 of the training data.
        num_notes: number of notes of the training data (the model itself runs
            on any number).
        steps_per_quarter: steps per quarter note of the training data.
        beat_bits: binary digits of the bar-position feature.
        play_only: train and score play alone (data without articulation,
            such as the JSB Chorales benchmark).
    """

    time_units: typing.Tuple[int, ...] = (300, 300)
    note_units: typing.Tuple[int, ...] = (100, 50)
    dropout: float = 0.5
    lowest_pitch: int = 24
    num_notes: int = 78
    steps_per_quarter: int = 4
    beat_bits: int = 6
    play_only: bool = False

    def __post_init__(self):
        for name in ("time_units", "note_units"):
            units = getattr(self, name)
            if isinstance(units, int):
                units = (units,)
            if not units or not all(isinstance(u, int) and u > 0 for u in units):
                raise UserError(f"{name} must be a list of positive whole numbers, got {units!r}")
            object.__setattr__(self, name, tuple(units))
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("num_notes", "steps_per_quarter", "beat_bits"):
            if getattr(self, name) <= 0:
                raise UserError(f"{name} must be positive, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, values):
        """Builds a config from a dict, rejecting unknown keys and wrong types.

        Raises:
            UserError: for an unknown key or a value of the wrong type.
        """
        if not isinstance(values, dict):
            raise UserError(f"a model config must be a JSON object, got {type(values).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise UserError(
                f"unknown model config key(s) {', '.join(unknown)}; "
                f"known keys: {', '.join(fields)}"
            )
        checked = {}
        for name, value in values.items():
            default = fields[name].default
            if isinstance(default, tuple):
                ok = isinstance(value, (list, tuple)) and all(
                    isinstance(v, int) and not isinstance(v, bool) for v in value
                )
                value = tuple(value) if ok else value
            elif isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            else:  # float
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                value = float(value) if ok else value
            if not ok:
                raise UserError(
                    f"model config key {name!r} must be like {default!r}, got {value!r}"
                )
            checked[name] = value
        return cls(**checked)

    def to_dict(self):
        values = dataclasses.asdict(self)
        values["time_units"] = list(self.time_units)
        values["note_units"] = list(self.note_units)
        return values

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))


@keras.saving.register_keras_serializable(package="biax_keras")
class BiaxialModel(keras.Model):
    """The biaxial recurrent network.

    Args:
        config: a `BiaxialConfig` or its dict.

    Call arguments:
        inputs: dict with `roll` `(B, T, N, 2)` (the steps before the ones
            predicted), `beat` `(B, T)` (bar positions of the predicted steps)
            and `target` `(B, T, N, 2)` (the predicted steps, for the note
            axis's teacher forcing).
        training: bool, whether dropout is active.

    Returns:
        `(B, T, N, 2)` probabilities of play and articulate for each note of
        each predicted step.
    """

    def __init__(self, config=None, **kwargs):
        super().__init__(**kwargs)
        if config is None:
            config = BiaxialConfig()
        elif isinstance(config, dict):
            config = BiaxialConfig.from_dict(config)
        self.config = config
        self.note_features = NoteFeatures(
            lowest_pitch=config.lowest_pitch, beat_bits=config.beat_bits, name="note_features"
        )
        self.time_axis = TimeAxisLSTM(config.time_units, config.dropout, name="time_axis")
        self.note_axis = NoteAxisLSTM(config.note_units, config.dropout, name="note_axis")
        self.head = PlayArticulateHead(name="head")
        # Weights do not depend on the number of notes or steps, so the model
        # is built here once and for all (which also makes reloading simple).
        features = note_feature_size(config.beat_bits)
        self.time_axis.build((None, None, None, features))
        self.note_axis.build((None, None, None, config.time_units[-1]))
        self.head.build((None, config.note_units[-1]))
        self.built = True

    def call(self, inputs, training=None):
        features = self.note_features(inputs["roll"], inputs["beat"])
        x = self.time_axis(features, training=training)
        x = self.note_axis(x, inputs["target"], training=training)
        return self.head(x)

    def get_config(self):
        return {"config": self.config.to_dict(), "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def frame_losses(target, probabilities, play_only=False):
    """Per-step negative log-likelihoods in nats, summed over notes.

    Args:
        target: `(B, T, N, 2)` true play/articulate.
        probabilities: `(B, T, N, 2)` predicted probabilities.
        play_only: if True, articulate is ignored.

    Returns:
        `(play, articulate)`, each `(B, T)`; articulate counts only notes whose
        target plays, and is zero when `play_only`.
    """
    target = ops.cast(target, probabilities.dtype)
    p = ops.clip(probabilities, EPSILON, 1.0 - EPSILON)
    bce = -(target * ops.log(p) + (1.0 - target) * ops.log(1.0 - p))
    play = ops.sum(bce[..., 0], axis=-1)
    if play_only:
        return play, ops.zeros_like(play)
    articulate = ops.sum(bce[..., 1] * target[..., 0], axis=-1)
    return play, articulate


@keras.saving.register_keras_serializable(package="biax_keras")
class FrameNLL(keras.losses.Loss):
    """Frame negative log-likelihood (nats per step, summed over notes).

    Binary cross-entropy of play on every note, plus of articulate on the
    notes the target plays (an unplayed note has no articulation to predict).

    Args:
        play_only: ignore the articulate channel.
    """

    def __init__(self, play_only=False, name="frame_nll", **kwargs):
        super().__init__(name=name, **kwargs)
        self.play_only = bool(play_only)

    def call(self, y_true, y_pred):
        play, articulate = frame_losses(y_true, y_pred, self.play_only)
        return play + articulate

    def get_config(self):
        config = super().get_config()
        config.update(play_only=self.play_only)
        return config


@keras.saving.register_keras_serializable(package="biax_keras")
class NLLPart(keras.metrics.Mean):
    """Mean over steps of the frame NLL (`frame`) or one of its parts (`play`, `articulate`)."""

    def __init__(self, part="frame", play_only=False, name=None, **kwargs):
        if part not in ("frame", "play", "articulate"):
            raise ValueError(f"part must be 'frame', 'play' or 'articulate', got {part!r}")
        super().__init__(name=name or f"{part}_nll", **kwargs)
        self.part = part
        self.play_only = bool(play_only)

    def update_state(self, y_true, y_pred, sample_weight=None):
        play, articulate = frame_losses(y_true, y_pred, self.play_only)
        value = {"frame": play + articulate, "play": play, "articulate": articulate}[self.part]
        return super().update_state(value, sample_weight)

    def get_config(self):
        config = super().get_config()
        config.update(part=self.part, play_only=self.play_only)
        return config


@keras.saving.register_keras_serializable(package="biax_keras")
class NoteOnRate(keras.metrics.Metric):
    """Precision or recall of note-ons (play and articulate) at threshold 0.5.

    A predicted note-on is a note whose P(play) and P(articulate) both exceed
    0.5. In play-only mode the events are sounding notes (P(play) > 0.5).

    Args:
        kind: `precision` or `recall`.
        play_only: count sounding notes instead of note-ons.
    """

    def __init__(self, kind="precision", play_only=False, name=None, **kwargs):
        if kind not in ("precision", "recall"):
            raise ValueError(f"kind must be 'precision' or 'recall', got {kind!r}")
        event = "play" if play_only else "note_on"
        super().__init__(name=name or f"{event}_{kind}", **kwargs)
        self.kind = kind
        self.play_only = bool(play_only)
        self.hits = self.add_variable((), initializer="zeros", name="hits")
        self.total = self.add_variable((), initializer="zeros", name="total")

    def _events(self, roll, threshold):
        play = roll[..., 0] > threshold
        if self.play_only:
            return play
        return ops.logical_and(play, roll[..., 1] > threshold)

    def update_state(self, y_true, y_pred, sample_weight=None):
        true = self._events(ops.cast(y_true, "float32"), 0.5)
        pred = self._events(ops.cast(y_pred, "float32"), 0.5)
        hits = ops.sum(ops.cast(ops.logical_and(true, pred), "float32"))
        total = ops.sum(ops.cast(pred if self.kind == "precision" else true, "float32"))
        self.hits.assign_add(hits)
        self.total.assign_add(total)

    def result(self):
        return ops.divide_no_nan(self.hits, self.total)

    def reset_state(self):
        self.hits.assign(0.0)
        self.total.assign(0.0)

    def get_config(self):
        config = super().get_config()
        config.update(kind=self.kind, play_only=self.play_only)
        return config


def metrics_for(config):
    """The metrics `build_model` compiles with, for a config."""
    metrics = [NLLPart("frame", config.play_only), NLLPart("play", config.play_only)]
    if not config.play_only:
        metrics.append(NLLPart("articulate"))
    metrics += [
        NoteOnRate("precision", config.play_only),
        NoteOnRate("recall", config.play_only),
    ]
    return metrics


def build_model(config=None, learning_rate=1e-3, clipnorm=1.0, compile=True):
    """Builds (and by default compiles) a `BiaxialModel`.

    Args:
        config: a `BiaxialConfig`, its dict, or None for the default.
        learning_rate: Adam's learning rate.
        clipnorm: gradient clipping by global norm (None to turn it off).
        compile: whether to compile with the frame-NLL loss and metrics.

    Returns:
        A built `BiaxialModel`.
    """
    model = BiaxialModel(config)
    if compile:
        compile_model(model, learning_rate=learning_rate, clipnorm=clipnorm)
    return model


def compile_model(model, learning_rate=1e-3, clipnorm=1.0):
    """Compiles `model` with Adam, the frame-NLL loss and the metrics."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, global_clipnorm=clipnorm),
        loss=FrameNLL(model.config.play_only),
        metrics=metrics_for(model.config),
    )
    return model
