"""Styles to compose in: a name, or a blend of a style model's styles by weight.

    weights = styles.style_weights(config, "piano_midi_de=0.7,jsb_chorales=0.3")
    # array([0.3, 0. , 0. , 0.7], dtype=float32) for a model of four styles

A style model (`BiaxialConfig.styles`) takes the weights of its styles, one
per style, summing to 1; a model without styles takes none. Nothing here
imports TensorFlow: the command line checks a `--style` before it starts.
"""

import math

import numpy as np

from biax_keras.errors import UserError


def parse(spec, names):
    """`{style: weight}` from `"name"`, `"a=0.7,b=0.3"` or a dict, the weights summing to 1.

    Args:
        spec: a style's name, `NAME=WEIGHT,...` (weights > 0; they are
            scaled to sum to 1), or a dict of the same.
        names: the styles the model knows, in order.

    Raises:
        UserError: a name the model does not know (the line names those it
            knows), a weight that is not a positive number, or a style given
            twice.
    """
    known = ", ".join(names)
    if isinstance(spec, dict):
        items = list(spec.items())
    else:
        text = str(spec).strip()
        if not text:
            raise UserError(f"give a style: one of {known}, or a blend NAME=WEIGHT,...")
        items = []
        for part in text.split(","):
            name, sep, weight = part.partition("=")
            items.append((name.strip(), weight.strip() if sep else "1"))
    blend = {}
    for name, weight in items:
        if name not in names:
            raise UserError(f"unknown style {name!r}; this model knows {known}")
        if name in blend:
            raise UserError(f"style {name!r} is given twice")
        try:
            value = float(weight)
        except (TypeError, ValueError):
            raise UserError(f"the weight of style {name!r} must be a number, got {weight!r}") \
                from None
        if isinstance(weight, bool) or not math.isfinite(value) or value <= 0:
            raise UserError(f"the weight of style {name!r} must be a positive number, got {weight!r}")
        blend[name] = value
    total = sum(blend.values())
    return {name: value / total for name, value in blend.items()}


def style_weights(config, spec=None):
    """The style input of a model: `(S,)` float32 weights, or `(0,)` for a model without styles.

    Args:
        config: the model's `BiaxialConfig`.
        spec: see `parse`; None composes a style model in its first style.

    Raises:
        UserError: a style for a model without styles, or see `parse`.
    """
    if not config.styles:
        if spec is not None and spec != {}:
            raise UserError("this model learned one collection and has no styles; leave out "
                            "--style")
        return np.zeros((0,), np.float32)
    blend = parse(config.styles[0] if spec is None else spec, config.styles)
    return np.asarray([blend.get(name, 0.0) for name in config.styles], np.float32)


def describe(config, weights):
    """`"piano_midi_de 0.7 + jsb_chorales 0.3"`: the style of a piece, as a title says it."""
    if not config.styles:
        return ""
    return words({name: float(w) for name, w in zip(config.styles, weights) if w > 0})


def words(blend):
    """`{style: weight}` in words: `"piano_midi_de"`, or `"piano_midi_de 0.7 + jsb_chorales 0.3"`."""
    return " + ".join(name if w == 1 else f"{name} {w:.2g}" for name, w in blend.items())


def in_one_style(model, spec):
    """A style model fixed in one style (or blend): a model without styles, the same maths.

    The style mix enters the network only through the first time-axis LSTM,
    as extra inputs beside each note's features, the same at every note and
    step, so for fixed weights it is a constant term of that LSTM's gate
    pre-activations: `mix @ kernel[F:]` moves into its bias and the style's
    rows leave its kernel. The result scores and composes as the style model
    does in that style (to float rounding), and loads, scores and exports as
    any model trained on one collection: every tool that takes a model, and
    a file of data named anything, without `--style`.

    Args:
        model: a `BiaxialModel` with styles.
        spec: see `parse`: `"piano_midi_de"` or `"a=0.7,b=0.3"`.

    Returns:
        A new `BiaxialModel` whose config has no styles (its `sampling`, if
        any, kept).

    Raises:
        UserError: a model without styles, or see `parse`.
    """
    import dataclasses

    from biax_keras.nn import model as model_lib

    config = model.config
    if not config.styles:
        raise UserError("this model has no styles to fix one of")
    weights = style_weights(config, spec)
    mix = weights @ model.style_embedding.kernel.numpy()  # (E,)
    plain = model_lib.build_model(dataclasses.replace(config, styles=None), compile=False)
    plain.note_features.set_weights(model.note_features.get_weights())
    plain.note_axis.set_weights(model.note_axis.get_weights())
    plain.head.set_weights(model.head.get_weights())
    first, *rest = model.time_axis.lstms
    features = plain.time_axis.lstms[0].cell.kernel.shape[0]
    kernel, recurrent, bias = (v.numpy() for v in (first.cell.kernel, first.cell.recurrent_kernel,
                                                   first.cell.bias))
    plain.time_axis.lstms[0].set_weights([kernel[:features], recurrent,
                                          bias + mix @ kernel[features:]])
    for mine, theirs in zip(plain.time_axis.lstms[1:], rest):
        mine.set_weights(theirs.get_weights())
    return plain
