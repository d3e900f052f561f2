"""What a biaxial model is (`BiaxialConfig`), and how configs are read from JSON.

Nothing here imports TensorFlow or Keras: the command line reads a model's
config (from a `.keras` file, a run folder or an export) to check what a user
asked for before TensorFlow starts, and `model.py` builds the network from it.
"""

import dataclasses
import json
import typing

from biax_keras.errors import UserError
from biax_keras.sampling_controls import SamplingControls
from biax_keras.style_names import check_style_name


class ConfigSection:
    """A section of a run's JSON config as a frozen dataclass, read key by key.

    `BiaxialConfig` (section "model") and `train.TrainConfig` ("train") are
    both one: `from_dict` refuses an unknown key or a value of the wrong type
    in one line naming it (see `checked_fields`); `to_dict` gives JSON's lists
    for tuples. Subclasses name their section in `SECTION`.
    """

    SECTION = "config"

    @classmethod
    def from_dict(cls, values):
        """Builds a config from a dict, rejecting unknown keys and wrong types.

        Raises:
            UserError: for an unknown key or a value of the wrong type.
        """
        return cls(**checked_fields(cls, values, cls.SECTION))

    def to_dict(self):
        return {field.name: list(value) if isinstance(value, tuple) else value
                for field, value in ((f, getattr(self, f.name)) for f in dataclasses.fields(self))}

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))


@dataclasses.dataclass(frozen=True)
class BiaxialConfig(ConfigSection):
    """What a biaxial model is: sizes, note range and representation.

    Attributes:
        time_units: units of each time-axis LSTM.
        note_units: units of each note-axis LSTM.
        dropout: dropout rate after every LSTM during training.
        lowest_pitch: MIDI pitch of note index 0 of the training data.
        num_notes: number of notes of the training data (the model itself runs
            on any number).
        steps_per_quarter: steps per quarter note of the training data.
        beat_bits: binary digits of the bar-position feature (0: none).
        pitch_position: whether the scaled MIDI pitch of each note is one of
            its inputs (the original's "position"); without it only the pitch
            class tells the network where it is on the keyboard.
        play_only: train and score play alone (data without articulation,
            such as the JSB Chorales benchmark).
        input_dropout: in training, the share of the previous steps' notes
            hidden from the network (each note of each step at random), so
            that it learns to go on from a sparser past than its data's, as
            its own samples may be (0: none, as the original).
        sampling: the model's own sampling controls (`SamplingControls`
            fields, e.g. `{"temperature": 1.2, "adaptive": true}`): those its
            samples look most like its collection with, which `biax
            generate`, the studio and an export start from; a control given
            there still wins (None: the neutral controls, as before).
        styles: the names of the styles the model learns (one per collection
            it trains on, e.g. `["jsb_chorales", "nottingham"]`), or None
            for a model of one style (as before). A style model takes, beside
            the roll, the weights of its styles, `(B, S)`, which mix one
            learned embedding per style; the mix is fed to the time axis
            beside every note's features, the same for all notes and steps,
            so transposition invariance stays.
        style_units: the size of each style's embedding.
        style_sampling: a style model's own sampling controls per style,
            `{style: {control: value}}`, on top of `sampling` (e.g. a
            collection that composes too thinly at its style's temperature
            gets its own). A blend of styles gets their mix
            (`SamplingControls.mix`: real numbers by weight, the rest from
            the heaviest style). None: `sampling` for every style.
    """

    time_units: typing.Tuple[int, ...] = (300, 300)
    note_units: typing.Tuple[int, ...] = (100, 50)
    dropout: float = 0.5
    lowest_pitch: int = 24
    num_notes: int = 78
    steps_per_quarter: int = 4
    beat_bits: int = 6
    play_only: bool = False
    pitch_position: bool = True
    input_dropout: float = 0.0
    sampling: typing.Optional[typing.Dict[str, typing.Any]] = dataclasses.field(
        default=None, hash=False)
    styles: typing.Optional[typing.Tuple[str, ...]] = None
    style_units: int = 8
    style_sampling: typing.Optional[typing.Dict[str, typing.Dict[str, typing.Any]]] = (
        dataclasses.field(default=None, hash=False))

    SECTION = "model"

    def __post_init__(self):
        for name in ("time_units", "note_units"):
            units = getattr(self, name)
            if isinstance(units, int):
                units = (units,)
            if not units or not all(isinstance(u, int) and u > 0 for u in units):
                raise UserError(f"{name} must be a list of positive whole numbers, got {units!r}")
            object.__setattr__(self, name, tuple(units))
        for name in ("dropout", "input_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise UserError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        for name in ("num_notes", "steps_per_quarter"):
            if getattr(self, name) <= 0:
                raise UserError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.beat_bits < 0:
            raise UserError(f"beat_bits must be 0 (no bar position) or more, got {self.beat_bits!r}")
        if self.styles is not None:
            object.__setattr__(self, "styles", tuple(self.styles))
            for name in self.styles:
                check_style_name(name)
            if not self.styles or len(set(self.styles)) != len(self.styles):
                raise UserError(f"styles must be distinct names, at least one, got "
                                f"{list(self.styles)!r}")
        if self.style_units <= 0:
            raise UserError(f"style_units must be positive, got {self.style_units!r}")
        if self.sampling is not None:
            SamplingControls.check_partial(self.sampling, "the model config's 'sampling'")
            object.__setattr__(self, "sampling", dict(self.sampling))
        if self.style_sampling is not None:
            self._check_style_sampling()

    def _check_style_sampling(self):
        where = "the model config's 'style_sampling'"
        if not self.styles:
            raise UserError(f"{where} gives styles their own controls; this model has no styles")
        if not isinstance(self.style_sampling, dict):
            raise UserError(f"{where} must be a JSON object of styles' sampling controls")
        unknown = sorted(set(self.style_sampling) - set(self.styles))
        if unknown:
            raise UserError(f"{where} names unknown style(s) {', '.join(unknown)}; the model's "
                            f"styles: {', '.join(self.styles)}")
        for name, values in self.style_sampling.items():
            SamplingControls.check_partial(values, f"{where} of {name}")
            try:
                SamplingControls(**{**(self.sampling or {}), **values})
            except UserError as e:
                raise UserError(f"{where} of {name}: {e}") from None
        object.__setattr__(self, "style_sampling",
                           {name: dict(values) for name, values in self.style_sampling.items()})

    def own_sampling(self, style_weights=None):
        """The model's own controls, a dict of `SamplingControls` fields, for a style mix.

        Args:
            style_weights: a style model's weights of its styles, in the order
                of `styles` (None: its first style). A model without
                `style_sampling` (every model without styles) has the same controls
                in every style and ignores the weights.
        """
        base = dict(self.sampling or {})
        if not self.style_sampling:
            return base
        if style_weights is None:
            style_weights = [1.0] + [0.0] * (len(self.styles) - 1)
        if len(style_weights) != len(self.styles):
            raise ValueError(f"{len(self.styles)} styles need as many weights, got "
                             f"{len(style_weights)}")
        full = {**SamplingControls.defaults(), **base}
        settings = [{**full, **self.style_sampling.get(name, {})} for name in self.styles]
        named = set(base).union(*self.style_sampling.values())
        mixed = SamplingControls.mix(settings, style_weights)
        return {name: value for name, value in mixed.items() if name in named}

    def sampling_controls(self, style_weights=None, **overrides):
        """The model's own `SamplingControls` (for `style_weights`, see
        `own_sampling`), with `overrides` (those not None) on top."""
        given = {name: value for name, value in overrides.items() if value is not None}
        return SamplingControls(**{**self.own_sampling(style_weights), **given})



def checked_fields(cls, values, section):
    """`values` checked against the annotated fields of the config dataclass `cls`.

    JSON gives lists, whole numbers for floats, and null for optional values;
    this accepts exactly those for each field's annotation (`bool`, `int`,
    `float`, `Tuple[int, ...]`, `Optional[...]`) and nothing else, so a
    config error is one line naming the key rather than a crash later.

    Args:
        cls: a dataclass (`BiaxialConfig`, `train.TrainConfig`).
        values: the dict to check.
        section: its name in the run config (`model`, `train`), for messages.

    Returns:
        dict of the values, with tuples for tuple fields and floats for floats.

    Raises:
        UserError: not a dict, an unknown key, or a value of the wrong type.
    """
    if not isinstance(values, dict):
        raise UserError(f"the {section!r} config must be a JSON object, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise UserError(f"unknown {section} config key(s) {', '.join(unknown)}; "
                        f"known keys: {', '.join(hints)}")

    def whole(value):
        return isinstance(value, int) and not isinstance(value, bool)

    checked = {}
    for name, value in values.items():
        kind = hints[name]
        optional = typing.get_origin(kind) is typing.Union and type(None) in typing.get_args(kind)
        if optional:
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        if value is None and optional:
            checked[name] = None
            continue
        if typing.get_origin(kind) is dict:
            ok, expected = isinstance(value, dict), "a JSON object"
        elif typing.get_origin(kind) is tuple and typing.get_args(kind)[0] is str:
            ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
            value, expected = (tuple(value) if ok else value), "a list of names"
        elif typing.get_origin(kind) is tuple and typing.get_args(kind)[0] is float:
            ok = isinstance(value, (list, tuple)) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            value, expected = (tuple(map(float, value)) if ok else value), "a list of numbers"
        elif typing.get_origin(kind) is tuple:
            ok = isinstance(value, (list, tuple)) and all(whole(v) for v in value)
            value, expected = (tuple(value) if ok else value), "a list of whole numbers"
        elif kind is bool:
            ok, expected = isinstance(value, bool), "true or false"
        elif kind is int:
            ok, expected = whole(value), "a whole number"
        else:  # float: a whole number is a fine float
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value, expected = (float(value) if ok else value), "a number"
        if not ok:
            expected += " or null" if optional else ""
            raise UserError(f"{section} config key {name!r} must be {expected}, got {value!r}")
        checked[name] = value
    return checked
