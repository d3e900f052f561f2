"""`SamplingControls`: how the sampler chooses notes, each control defined once.

A control is one dataclass field whose metadata carries its range, its help
and the version of the control set that brought it. From the fields come:

- the checks (`SamplingControls(...)` refuses a value out of range),
- `biax generate`'s flags (`add_arguments`, `from_arguments`),
- the studio's inputs (`page_inputs`, `from_page`),
- the compiled sampler's inputs (`tensor_specs`, `tensors`), and
- the exported `generate` signatures, one scalar input per control, with the
  same checks inside the graph (`graph_checks`).

So a new control is a field here and its use in `sampling.py`. An export
records the version of its control set (`VERSION`); an older SavedModel, made
before a control existed, still loads and composes with that control at its
default (see `export.ExportedModel`).

    controls = SamplingControls(temperature=0.9, conservativity=1.2, adaptive=True)
    roll = biax_keras.generate(model, steps=240, seed=1, controls=controls)
"""

import argparse
import dataclasses
import math

import numpy as np

from biax_keras.errors import UserError

# MIDI's pitches: the range a piece may be confined to.
LOWEST_MIDI_PITCH, HIGHEST_MIDI_PITCH = 0, 127


def control(default, help, *, minimum=None, above=None, maximum=None, page=None, since=1):
    """A `SamplingControls` field.

    Args:
        default: the value that changes nothing about the model's own choices
            (except where the control is the choice itself).
        help: what it does, for `--help` and the studio.
        minimum, maximum: inclusive bounds; `above`: an exclusive lower bound.
        page: `(low, high)` of the studio's input, where narrower than the bounds.
        since: the version of the control set that brought it (see `VERSION`).
    """
    return dataclasses.field(default=default, metadata={
        "help": help, "minimum": minimum, "above": above, "maximum": maximum,
        "page": page, "since": since})


@dataclasses.dataclass(frozen=True)
class SamplingControls:
    """How the sampler chooses notes (see `sampling.py` for what each does).

    Attributes:
        temperature: > 0; logits are divided by it (small: nearly
            deterministic, large: nearly uniform).
        conservativity: > 0; P(play) is raised to this power (> 1 plays
            fewer notes).
        adaptive: lower the conservativity after silent steps and let it
            return when notes sound.
        min_pitch, max_pitch: the MIDI pitches the new music may use; notes
            outside them are never played (a primer keeps its own).
    """

    temperature: float = control(1.0, "logits are divided by it: > 1 wilder, < 1 safer",
                                 above=0.0, page=(0.05, 5.0))
    conservativity: float = control(1.0, "P(play) is raised to this power: > 1 plays fewer "
                                          "notes", above=0.0, page=(0.05, 10.0))
    adaptive: bool = control(False, "lower the conservativity during silences, as the "
                                    "original did")
    min_pitch: int = control(LOWEST_MIDI_PITCH, "the lowest MIDI pitch the new music may play "
                                                "(60 is middle C)",
                             minimum=LOWEST_MIDI_PITCH, maximum=HIGHEST_MIDI_PITCH, since=2)
    max_pitch: int = control(HIGHEST_MIDI_PITCH, "the highest MIDI pitch the new music may play",
                             minimum=LOWEST_MIDI_PITCH, maximum=HIGHEST_MIDI_PITCH, since=2)

    def __post_init__(self):
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, _checked(field, getattr(self, field.name)))
        if self.min_pitch > self.max_pitch:
            raise UserError(f"min_pitch ({self.min_pitch}) is above max_pitch ({self.max_pitch}); "
                            f"give a range low to high")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def check_partial(cls, values, where):
        """Checks some controls by name and range (a model's own, `BiaxialConfig.sampling`).

        Raises:
            UserError: `values` is not a dict, names an unknown control or holds a
                value out of range, said in one line naming `where`.
        """
        if not isinstance(values, dict):
            raise UserError(f"{where} must be a JSON object of sampling controls")
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise UserError(f"{where} names unknown control(s) {', '.join(unknown)}; "
                            f"known: {', '.join(cls.names())}")
        try:
            cls(**values)
        except UserError as e:
            raise UserError(f"{where}: {e}") from None

    @classmethod
    def names(cls, version=None):
        """The controls of the control set `version` (None: this one), in order."""
        return [f.name for f in dataclasses.fields(cls)
                if version is None or f.metadata["since"] <= version]

    @classmethod
    def defaults(cls):
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def mix(cls, settings, weights):
        """One setting of controls for a blend of several, as a style model's
        own controls for a blend of its styles (`BiaxialConfig.style_sampling`).

        A control of real numbers (temperature, conservativity) is the
        weighted mean of the settings'; any other (adaptive, the pitch range)
        is the heaviest setting's (the first of equals).

        Args:
            settings: dicts of controls, all naming the same ones.
            weights: a non-negative weight per setting, not all 0.

        Returns:
            dict of those controls.
        """
        weights = [float(w) for w in weights]
        if len(weights) != len(settings) or min(weights, default=-1) < 0 or not sum(weights):
            raise ValueError(f"{len(settings)} settings need as many weights, non-negative "
                             f"and not all 0, got {weights}")
        heaviest = settings[weights.index(max(weights))]
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        return {name: (round(sum(w * s[name] for w, s in zip(weights, settings)) / sum(weights), 6)
                       if types[name] is float else heaviest[name])
                for name in heaviest}

    # -- the command line ----------------------------------------------------

    @classmethod
    def add_arguments(cls, parser):
        """One flag per control (`--min-pitch` for `min_pitch`; `--adaptive/--no-adaptive`).

        A flag not given is None: the model's own control then (see
        `BiaxialConfig.sampling`), else the neutral default the help names.
        """
        for field in dataclasses.fields(cls):
            flag = "--" + field.name.replace("_", "-")
            if field.type is bool:
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                                    help=f"{field.metadata['help']} (default: the model's own, "
                                         f"else {'on' if field.default else 'off'})")
            else:
                parser.add_argument(flag, type=_argument_type(field), default=None,
                                    help=f"{field.metadata['help']} ({_range_words(field)}; "
                                         f"default: the model's own, else {field.default:g})")

    @classmethod
    def from_arguments(cls, args, config=None, style_weights=None):
        """The controls of `add_arguments`' flags: those given, on top of `config`'s own.

        Args:
            args: the parsed flags.
            config: a `BiaxialConfig` whose own controls fill the flags not
                given (None: the neutral defaults fill them).
            style_weights: a style model's weights of its styles, whose own
                controls those are (`BiaxialConfig.own_sampling`).
        """
        base = config.own_sampling(style_weights) if config is not None else {}
        given = {name: getattr(args, name) for name in cls.names()
                 if getattr(args, name, None) is not None}
        return cls(**{**base, **given})

    # -- the studio page -----------------------------------------------------

    @classmethod
    def page_inputs(cls):
        """The studio's inputs: `[{"name", "type", "default", "min", "max", "help"}]`."""
        inputs = []
        for field in dataclasses.fields(cls):
            low, high = _page_range(field)
            inputs.append({"name": field.name, "type": _type_name(field),
                           "default": field.default, "min": low, "max": high,
                           "help": field.metadata["help"]})
        return inputs

    @classmethod
    def from_page(cls, values, base=None):
        """Controls from the studio's form (strings, as a page sends them).

        A control left out keeps its value in `base` (a model's own
        `BiaxialConfig.sampling`), else its default; a number outside the
        page's range is refused in one line.

        Raises:
            UserError: naming the control and its range.
        """
        chosen = {}
        for field in dataclasses.fields(cls):
            if field.name not in values:
                continue
            value = values[field.name]
            if field.type is bool:
                chosen[field.name] = value in (True, "true", "on", "1", 1)
                continue
            low, high = _page_range(field)
            if isinstance(value, bool) or value is None or value == "":
                raise UserError(f"{field.name} is missing; give a number from {low:g} to {high:g}")
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise UserError(f"{field.name} must be a number from {low:g} to {high:g}, "
                                f"got {value!r}") from None
            if not math.isfinite(number) or not low <= number <= high:
                raise UserError(f"{field.name} must be from {low:g} to {high:g}, got {value}")
            if field.type is int and number != int(number):
                raise UserError(f"{field.name} must be a whole number, got {value}")
            chosen[field.name] = field.type(number)
        return cls(**{**(base or {}), **chosen})

    # -- the compiled sampler and the export --------------------------------

    @classmethod
    def tensor_specs(cls, version=None):
        """`{name: tf.TensorSpec}`: one scalar per control, for input signatures."""
        import tensorflow as tf

        dtypes = {bool: tf.bool, float: tf.float32, int: tf.int32}
        return {f.name: tf.TensorSpec((), dtypes[f.type], name=f.name)
                for f in dataclasses.fields(cls) if f.name in cls.names(version)}

    def tensors(self, version=None):
        """`{name: scalar tensor}`, matching `tensor_specs(version)`."""
        import tensorflow as tf

        return {name: tf.constant(getattr(self, name), spec.dtype)
                for name, spec in self.tensor_specs(version).items()}

    @classmethod
    def graph_checks(cls, values):
        """TensorFlow assertions of each control's range, for an export's inputs."""
        import tensorflow as tf

        checks = []
        for field in dataclasses.fields(cls):
            if field.name not in values or field.type is bool:
                continue
            value, meta = values[field.name], field.metadata
            message = f"{field.name} must be {_range_words(field)}"
            if meta["above"] is not None:
                checks.append(tf.debugging.assert_greater(
                    value, tf.cast(meta["above"], value.dtype), message=message))
            if meta["minimum"] is not None:
                checks.append(tf.debugging.assert_greater_equal(
                    value, tf.cast(meta["minimum"], value.dtype), message=message))
            if meta["maximum"] is not None:
                checks.append(tf.debugging.assert_less_equal(
                    value, tf.cast(meta["maximum"], value.dtype), message=message))
        return checks


def _type_name(field):
    return {bool: "bool", float: "float", int: "int"}[field.type]


def _range_words(field):
    meta = field.metadata
    words = []
    if meta["above"] is not None:
        words.append(f"> {meta['above']:g}")
    if meta["minimum"] is not None and meta["maximum"] is not None:
        words.append(f"from {meta['minimum']:g} to {meta['maximum']:g}")
    elif meta["minimum"] is not None:
        words.append(f">= {meta['minimum']:g}")
    elif meta["maximum"] is not None:
        words.append(f"<= {meta['maximum']:g}")
    return ", ".join(words + [f"default: {field.default}"])


def _page_range(field):
    meta = field.metadata
    if meta["page"] is not None:
        return meta["page"]
    return meta["minimum"], meta["maximum"]


def _checked(field, value):
    """`value` as the field's type, or a `UserError` naming the field and its range."""
    meta = field.metadata
    if field.type is bool:
        if not isinstance(value, (bool, np.bool_)):
            raise UserError(f"{field.name} must be True or False, got {value!r}")
        return bool(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
            or not math.isfinite(value):
        raise UserError(f"{field.name} must be a number, got {value!r}")
    if field.type is int:
        if value != int(value):
            raise UserError(f"{field.name} must be a whole number, got {value!r}")
        value = int(value)
    else:
        value = float(value)
    if meta["above"] is not None and not value > meta["above"]:
        raise UserError(f"{field.name} must be a positive number, got {value!r}"
                        if meta["above"] == 0 else
                        f"{field.name} must be above {meta['above']:g}, got {value!r}")
    if (meta["minimum"] is not None and value < meta["minimum"]) or \
            (meta["maximum"] is not None and value > meta["maximum"]):
        raise UserError(f"{field.name} must be {_range_words(field).rsplit(', default', 1)[0]}, "
                        f"got {value!r}")
    return value


def _argument_type(field):
    """An argparse type: the field's type and range, refused as argparse refuses."""

    def parse(text):
        try:
            number = field.type(text)
        except ValueError:
            kind = "whole number" if field.type is int else "number"
            raise argparse.ArgumentTypeError(f"expected a {kind}, got {text!r}") from None
        try:
            return _checked(field, number)
        except UserError as e:
            # "temperature must be ..." -> "must be ...": argparse names the flag itself.
            raise argparse.ArgumentTypeError(str(e).split(" ", 1)[1]) from None

    parse.__name__ = field.type.__name__
    return parse


# The version of the control set: the newest control's `since`. An export
# records it; a SavedModel made with an older set takes only its controls.
VERSION = max(f.metadata["since"] for f in dataclasses.fields(SamplingControls))
