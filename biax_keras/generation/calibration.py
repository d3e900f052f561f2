"""A model's own sampling controls: those its samples look most like its collection with.

A model trained on likelihood alone may compose more thinly than its
collection when it runs free (see benchmarks/thinning.py): a few missed
notes leave a sparser past, from which it predicts sparser music. Its config
can carry the sampling controls that bring its samples back to its
collection (`BiaxialConfig.sampling`); `biax generate`, the studio and an
export start from them. This module finds them on a collection's pieces
(the valid split, never the test split) and writes them into a `.keras`
file:

    rows = calibration.search(model, reference_rolls)
    calibration.write_defaults("saved_models/piano_midi_de", rows[0]["controls"])

Each setting is scored by how far its samples lie from the collection in
the figures of `statistics.against_collection` that sampling moves (note
onsets and notes sounding per step, silent steps, the KLs of pitch classes
in key and of vertical intervals), each as a share of its bound, so a score
of 1 or less is within every bound. The copy check and the two-sample test
are left to `biax evaluate`: they are slower and no control aims at them.
"""

import itertools
import json
import math
import os
import shutil
import tempfile
import zipfile

import numpy as np

from biax_keras.errors import UserError
from biax_keras.sampling_controls import SamplingControls
from biax_keras.music import statistics

TEMPERATURES, CONSERVATIVITIES, ADAPTIVE = (1.0, 1.1, 1.2, 1.3), (1.0, 0.9, 0.8), (False, True)


def grid(temperatures=TEMPERATURES, conservativities=CONSERVATIVITIES, adaptive=ADAPTIVE):
    """Every combination of the values given, as dicts of `SamplingControls` fields."""
    return tuple({"temperature": t, "conservativity": c, "adaptive": a}
                 for t, c, a in itertools.product(temperatures, conservativities, adaptive))


# temperature x conservativity x adaptive: 24 settings around the neutral one.
GRID = grid()
SAMPLES, STEPS, SEED = 8, 120, 100


def distances(generated, reference):
    """How far a set of rolls lies from a collection, each figure as a share of its bound.

    Args:
        generated: `statistics.set_statistics` of the samples.
        reference: `statistics.set_statistics` of the collection.

    Returns:
        `{figure: value}` and `{figure: share of its bound}` (<= 1: within).
    """
    def log_ratio(key):
        if not reference[key]:
            return math.inf
        if not generated[key]:
            return math.inf
        return abs(math.log(generated[key] / reference[key]))

    widest = math.log(statistics.DENSITY_RATIO[1])
    values = {
        "onsets_per_step_ratio": generated["onsets_per_step"] / reference["onsets_per_step"]
        if reference["onsets_per_step"] else math.inf,
        "notes_sounding_ratio": generated["polyphony_mean"] / reference["polyphony_mean"]
        if reference["polyphony_mean"] else math.inf,
        "silent_share_difference": abs(generated["silent_share"] - reference["silent_share"]),
        "pitch_class_in_key_kl": statistics.histogram_kl(
            generated["pitch_class_in_key_histogram"]["counts"],
            reference["pitch_class_in_key_histogram"]["counts"]),
        "interval_kl": statistics.histogram_kl(generated["interval_histogram"]["counts"],
                                               reference["interval_histogram"]["counts"]),
    }
    low = math.log(statistics.DENSITY_RATIO[0])
    shares = {
        # The density bounds are not symmetric in log terms (0.8 and 1.25 are):
        # both sides are measured against their own end.
        "onsets_per_step_ratio": log_ratio("onsets_per_step") / (
            widest if generated["onsets_per_step"] >= reference["onsets_per_step"] else -low),
        "notes_sounding_ratio": log_ratio("polyphony_mean") / (
            widest if generated["polyphony_mean"] >= reference["polyphony_mean"] else -low),
        "silent_share_difference": values["silent_share_difference"]
        / statistics.SILENCE_DIFFERENCE,
        "pitch_class_in_key_kl": values["pitch_class_in_key_kl"] / statistics.HISTOGRAM_KL,
        "interval_kl": values["interval_kl"] / statistics.HISTOGRAM_KL,
    }
    return values, shares


def search(model, reference_rolls, grid=GRID, samples=SAMPLES, steps=STEPS, seed=SEED,
           style=None):
    """Every setting of `grid`, scored against the collection, best first.

    Args:
        model: a loaded model.
        reference_rolls: the collection's rolls (the valid split), at the
            model's resolution and note range.
        grid: dicts of `SamplingControls` fields.
        samples, steps, seed: the pieces composed per setting.
        style: a style model's style or blend to compose in (`NAME` or
            `NAME=W,...`; None: its first style).

    Returns:
        `[{"controls", "figures", "shares", "score", "outside", "within"}]`,
        those with fewest figures `outside` their bounds first, then by
        `score` (the largest share of a bound; within every bound at <= 1).

    Raises:
        UserError: an empty collection, or a setting out of range.
    """
    from biax_keras.generation.sampling import generate_batch

    if not reference_rolls:
        raise UserError("the collection has no pieces to calibrate against")
    lowest = model.config.lowest_pitch
    reference = statistics.set_statistics(list(reference_rolls), lowest)
    rows = []
    for setting in grid:
        controls = SamplingControls(**setting)
        rolls = generate_batch(model, samples, steps, seed=seed, controls=controls, style=style)
        generated = statistics.set_statistics(list(np.asarray(rolls)), lowest)
        figures, shares = distances(generated, reference)
        score = max(shares.values())
        outside = sorted(name for name, share in shares.items() if share > 1.0)
        rows.append({"controls": dict(setting), "figures": figures, "shares": shares,
                     "score": score, "outside": outside, "within": not outside})
    rows.sort(key=lambda row: (len(row["outside"]), row["score"]))
    return rows


def table(rows):
    """The rows of `search` as a Markdown table."""
    lines = ["| temperature | conservativity | adaptive | onsets/step | sounding/step | "
             "silent (difference) | KL in key | KL intervals | score |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        c, f = row["controls"], row["figures"]
        lines.append(f"| {c.get('temperature', 1.0):g} | {c.get('conservativity', 1.0):g} | "
                     f"{'yes' if c.get('adaptive') else 'no'} | "
                     f"x{f['onsets_per_step_ratio']:.2f} | x{f['notes_sounding_ratio']:.2f} | "
                     f"{f['silent_share_difference']:.3f} | {f['pitch_class_in_key_kl']:.3f} | "
                     f"{f['interval_kl']:.3f} | {row['score']:.2f} |")
    return "\n".join(lines)


def write_defaults(path, sampling, style=None):
    """Make `sampling` the model's own controls in its `.keras` file, weights untouched.

    The archive's `config.json` is rewritten (the weights are copied byte
    for byte) into a temporary file beside it, which then replaces it; a run
    folder's `config.json` gets the same `model.sampling`.

    Args:
        path: a `.keras` file or a run folder holding `model.keras`.
        sampling: dict of `SamplingControls` fields (None: the neutral ones).
        style: a style model's style whose own controls these are
            (`BiaxialConfig.style_sampling`; None: the model's, `sampling`).

    Raises:
        UserError: the path is not a `.keras` model, or a control is out of range.
    """
    import biax_keras

    if sampling is not None:
        SamplingControls.check_partial(sampling, "sampling")
    kind, keras_file = biax_keras.model_file(path)
    if kind != "keras":
        raise UserError(f"{path} is an exported SavedModel; write the defaults into the .keras "
                        f"model, then export it again")
    from biax_keras.nn.config import BiaxialConfig

    def place(model_values):
        """`model_values` (a model config dict) with `sampling` written in."""
        if style is None:
            return {**model_values, "sampling": sampling}
        by_style = {k: v for k, v in (model_values.get("style_sampling") or {}).items()
                    if k != style}
        if sampling is not None:
            by_style[style] = sampling
        values = {**model_values, "style_sampling": by_style or None}
        BiaxialConfig.from_dict(values)  # a style the model does not know, said here
        return values

    with zipfile.ZipFile(keras_file) as archive:
        config = json.loads(archive.read("config.json"))
        config["config"]["config"] = place(config["config"]["config"])
        fd, scratch = tempfile.mkstemp(suffix=".keras.tmp", dir=os.path.dirname(keras_file)
                                       or ".")
        os.close(fd)
        try:
            with zipfile.ZipFile(scratch, "w") as out:
                for item in archive.infolist():
                    data = (json.dumps(config).encode() if item.filename == "config.json"
                            else archive.read(item))
                    out.writestr(item, data)
            shutil.copymode(keras_file, scratch)
            os.replace(scratch, keras_file)
        except BaseException:
            os.unlink(scratch)
            raise
    run_config = os.path.join(os.path.dirname(keras_file), "config.json")
    if os.path.isfile(run_config):
        with open(run_config) as f:
            values = json.load(f)
        values["model"] = place(values.get("model", {}))
        fd, scratch = tempfile.mkstemp(suffix=".json.tmp", dir=os.path.dirname(run_config))
        with os.fdopen(fd, "w") as f:
            json.dump(values, f, indent=2)
            f.write("\n")
        shutil.copymode(run_config, scratch)
        os.replace(scratch, run_config)
