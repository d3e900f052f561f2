"""One model, several styles: prepared datasets tagged with a style, one run on
several of them, composing in a style or a blend (Python, CLI, export), scoring
in a style; and a model without styles, with its files, as before."""

import json

import numpy as np
import pytest
import tensorflow as tf

import biax_keras
from biax_keras import data, train
from biax_keras.app import cli, evaluate, studio
from biax_keras.errors import UserError
from biax_keras.generation import styles
from biax_keras.generation.export import export_model
from biax_keras.nn.model import BiaxialConfig, build_model

LOWEST, NOTES = 48, 24
# Two collections anyone can tell apart: low three-note chords struck every
# other step, and a single high note that walks up and down every step.
LOW = [[[48, 52, 55] if t % 2 == 0 else [] for t in range(48)] for _ in range(6)]
HIGH = [[[64 + (t % 6 if t % 12 < 6 else 6 - t % 6)] for t in range(48)] for _ in range(6)]
CONFIG = {"model": {"time_units": [16], "note_units": [12], "dropout": 0.0, "style_units": 4},
          "train": {"epochs": 20, "batch_size": 8, "window": 16, "steps_per_epoch": 10,
                    "learning_rate": 0.02, "transpose": False, "image_every": 0,
                    "sample_every": 0}}


def _prepare(folder, pieces, style):
    source = folder / f"{style}.json"
    source.write_text(json.dumps({"train": pieces, "valid": pieces[:2], "test": pieces[:1]}))
    out = folder / style
    data.prepare(str(source), str(out), steps_per_quarter=1, lowest_pitch=LOWEST,
                 num_notes=NOTES, workers=1)
    return out


@pytest.fixture(scope="module")
def two_styles(tmp_path_factory):
    """A tiny model trained on the two collections at once."""
    folder = tmp_path_factory.mktemp("styles")
    low, high = _prepare(folder, LOW, "low"), _prepare(folder, HIGH, "high")
    report = train.train([low, high], folder / "run", CONFIG, verbose=0)
    return folder, low, high, report


def test_prepare_tags_a_dataset_with_its_style(two_styles, tmp_path):
    _, low, _, _ = two_styles
    assert data.load_meta(low)["style"] == "low"  # the JSON file's name
    source = tmp_path / "Piano-Midi.de.json"
    source.write_text(json.dumps({"train": LOW, "valid": LOW[:1], "test": []}))
    data.prepare(str(source), str(tmp_path / "a"), steps_per_quarter=1, lowest_pitch=LOWEST,
                 num_notes=NOTES, workers=1)
    assert data.dataset_style(tmp_path / "a") == "piano-midi.de"
    assert cli.main(["prepare", str(source), "--out", str(tmp_path / "b"), "--steps-per-quarter",
                     "1", "--lowest-pitch", str(LOWEST), "--num-notes", str(NOTES),
                     "--style", "chorales", "--workers", "1"]) == 0
    assert data.dataset_style(tmp_path / "b") == "chorales"
    assert cli.main(["prepare", str(source), "--out", str(tmp_path / "c"),
                     "--steps-per-quarter", "1", "--style", "Bad Name"]) == 2


def test_a_run_on_two_datasets_learns_two_styles(two_styles):
    folder, low, high, report = two_styles
    model = biax_keras.load_model(folder / "run")
    assert model.config.styles == ("low", "high")
    assert json.loads((folder / "run" / "data.json").read_text())["datasets"] == [
        str(low.resolve()), str(high.resolve())]
    # Each style composes its collection's texture: chords of three, or one note at a time.
    texture = {name: _notes_per_sounding_step(model, name) for name in ("low", "high")}
    assert texture["low"] > 2.5 and texture["high"] < 1.5, texture
    # Each collection is likelier in its own style than in the other.
    nll = {(d, s): evaluate.evaluate_model(folder / "run", d, split="valid", style=s)["frame_nll"]
           for d in (low, high) for s in ("low", "high")}
    assert nll[(low, "low")] < nll[(low, "high")] and nll[(high, "high")] < nll[(high, "low")]
    # Scored without --style, a prepared folder is scored in its own style.
    assert evaluate.evaluate_model(folder / "run", low, split="valid")["frame_nll"] == \
        nll[(low, "low")]


def _notes_per_sounding_step(model, style, seed=1):
    roll = biax_keras.generate_batch(model, 8, 32, seed=seed, style=style)[..., 0]
    counts = roll.reshape(-1, NOTES).sum(-1)
    return float(counts[counts > 0].mean())


def test_a_blend_lies_between_its_styles(two_styles):
    folder, _, _, _ = two_styles
    model = biax_keras.load_model(folder / "run")
    low, high = (_notes_per_sounding_step(model, s, seed=2) for s in ("low", "high"))
    half = _notes_per_sounding_step(model, "low=0.5,high=0.5", seed=2)
    assert high < half < low, (high, half, low)


def test_a_style_the_model_does_not_know_is_one_line(two_styles, tmp_path, capsys):
    folder, _, _, _ = two_styles
    code = cli.main(["generate", "--model", str(folder / "run"), "--out",
                     str(tmp_path / "x.mid"), "--style", "jazz", "--steps", "8"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "unknown style 'jazz'; this model knows low, high" \
        in err[0]
    assert not (tmp_path / "x.mid").exists()
    for bad, words in [("low=0", "must be a positive number"), ("low=x", "must be a number"),
                       ("low,low", "given twice"), ("", "give a style")]:
        with pytest.raises(UserError, match=words):
            styles.parse(bad, ("low", "high"))
    assert styles.parse("low=3,high=1", ("low", "high")) == {"low": 0.75, "high": 0.25}


@pytest.mark.slow
def test_biax_generate_composes_in_a_style(two_styles, tmp_path, capsys):
    folder, _, _, _ = two_styles
    assert cli.main(["generate", "--model", str(folder / "run"), "--out",
                     str(tmp_path / "b.mid"), "--style", "high=0.7,low=0.3", "--steps", "16",
                     "--seed", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["style"] == {"low": 0.3, "high": 0.7}
    assert cli.main(["generate", "--model", str(folder / "run"), "--out",
                     str(tmp_path / "c.mid"), "--style", "high", "--steps", "16"]) == 0
    assert "notes in high" in capsys.readouterr().out


@pytest.mark.slow
def test_the_export_takes_style_weights(two_styles, tmp_path):
    folder, _, _, _ = two_styles
    model = biax_keras.load_model(folder / "run")
    export_model(model, tmp_path / "exported")
    loaded = tf.saved_model.load(str(tmp_path / "exported"))
    controls = {k: v for k, v in loaded.sampling_defaults(style=tf.constant([0.0, 1.0])).items()}
    roll = loaded.generate(steps=tf.constant(16), seed=tf.constant(1, tf.int64),
                           num_samples=tf.constant(1), style=tf.constant([0.0, 1.0]),
                           **controls)["roll"]
    np.testing.assert_array_equal(roll.numpy(),
                                  biax_keras.generate_batch(model, 1, 16, seed=1, style="high"))
    with pytest.raises(tf.errors.InvalidArgumentError, match="sum to 1"):
        loaded.generate(steps=tf.constant(16), seed=tf.constant(1, tf.int64),
                        num_samples=tf.constant(1), style=tf.constant([0.5, 0.9]), **controls)
    exported = biax_keras.load_model(tmp_path / "exported")
    np.testing.assert_array_equal(biax_keras.generate(exported, 16, seed=4, style="low"),
                                  biax_keras.generate(model, 16, seed=4, style="low"))


@pytest.mark.slow
def test_fine_tuning_on_one_dataset_keeps_the_styles(two_styles):
    folder, low, _, _ = two_styles
    report = train.train(low, folder / "tuned", {**CONFIG, "train": {**CONFIG["train"],
                                                                     "epochs": 1}},
                         init=folder / "run" / "model.keras", verbose=0)
    assert biax_keras.model_config(report["model"]).styles == ("low", "high")


def test_datasets_that_do_not_fit_together_are_refused(two_styles, tmp_path):
    folder, low, _, _ = two_styles
    source = tmp_path / "wide.json"
    source.write_text(json.dumps({"train": HIGH, "valid": HIGH[:1], "test": []}))
    data.prepare(str(source), str(tmp_path / "wide"), steps_per_quarter=2, lowest_pitch=LOWEST,
                 num_notes=NOTES, workers=1)
    with pytest.raises(UserError, match="prepared with steps_per_quarter 2"):
        train.train([low, tmp_path / "wide"], tmp_path / "run", CONFIG, verbose=0)
    with pytest.raises(UserError, match="one data weight per --data"):
        train.train([low, folder / "high"], tmp_path / "run",
                     {**CONFIG, "train": {**CONFIG["train"], "data_weights": [1, 2, 3]}},
                     verbose=0)


def test_a_model_without_styles_is_as_before(tmp_path):
    config = BiaxialConfig(time_units=(8,), note_units=(8,), lowest_pitch=LOWEST, num_notes=NOTES)
    assert config.to_dict()["styles"] is None
    model = build_model(config, compile=False)
    names = [w.path for w in model.weights]
    assert not any("style" in name for name in names)
    with pytest.raises(UserError, match="has no styles; leave out --style"):
        biax_keras.generate(model, 8, style="low")
    model.save(tmp_path / "plain.keras")
    listed = studio.Studio({"plain": str(tmp_path / "plain.keras")}, tmp_path).model_list()
    assert listed[0]["styles"] is None


def test_the_studio_offers_the_styles_and_a_blend(two_styles, tmp_path):
    folder, _, _, _ = two_styles
    page = studio.Studio({"styles": str(folder / "run")}, tmp_path)
    assert page.model_list()[0]["styles"] == ["low", "high"]
    model = page._model("styles", None)[1]
    from biax_keras.generation import compose

    steps = compose.length_in_steps(model.config, seconds=4)
    for style in ("high", "low=0.4,high=0.6"):
        answer = page.compose({"model": "styles", "seconds": 4, "seed": 5, "style": style})
        np.testing.assert_array_equal(
            page.pieces[answer["piece"]]["composition"].rolls,
            compose.compose(model, steps=steps, seed=5, style=style).rolls)
    with pytest.raises(UserError, match="unknown style 'jazz'"):
        page.compose({"model": "styles", "seconds": 4, "seed": 5, "style": "jazz"})
    for words in ('id="style"', 'id="blend"', 'id="blend_weight"'):
        assert words in studio.PAGE


@pytest.mark.slow
def test_the_readmes_commands_train_and_compose_in_styles(two_styles, tmp_path, capsys):
    """`biax train --data A --data B --data-weights 1,1` and `--style` blends, as the
    README writes them (a tiny config in place of the default sizes)."""
    folder, low, high, _ = two_styles
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**CONFIG, "train": {**CONFIG["train"], "epochs": 1}}))
    assert cli.main(["train", "--data", str(low), "--data", str(high), "--data-weights", "1,1",
                     "--out", str(tmp_path / "styles"), "--config", str(config)]) == 0
    capsys.readouterr()
    assert cli.main(["generate", "--model", str(tmp_path / "styles"), "--style",
                     "high=0.7,low=0.3", "--out", str(tmp_path / "blend.mid"),
                     "--seconds", "4"]) == 0
    assert (tmp_path / "blend.mid").is_file()
    code = cli.main(["train", "--data", str(low), "--data", str(high), "--data-weights", "1",
                     "--out", str(tmp_path / "other"), "--config", str(config)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["biax train: error: --data-weights gives 1 weights for 2 "
                                 "--data; give one per dataset"]
    assert not (tmp_path / "other").exists()


def test_each_collection_counts_alike_in_validation(two_styles, tmp_path):
    """The valid pass weighs each dataset's windows so that each dataset weighs the same,
    whatever its size, and the weights average 1 (the loss reads as the metrics do)."""
    folder, low, _, _ = two_styles
    big = _prepare(tmp_path, [p * 3 for p in HIGH], "big")  # three times the windows
    stream = data.make_mixed_dataset([low, big], "valid", [np.eye(2)[0], np.eye(2)[1]],
                                     window=16, batch_size=4)
    totals, windows = np.zeros(2), np.zeros(2)
    for inputs, _, weight in stream.as_numpy_iterator():
        which = inputs["style"].argmax(-1)
        for k in (0, 1):
            totals[k] += weight[which == k, 0].sum()
            windows[k] += (which == k).sum()
    assert windows[1] == 3 * windows[0]
    assert totals[0] == pytest.approx(totals[1]) and totals.sum() == pytest.approx(windows.sum())


def test_the_staged_style_model_is_what_benchmarks_says():
    """training/stages/styles/: the checkpoint a later sitting goes on from, and the
    stretches BENCHMARKS.md lists, each from its own history."""
    import csv
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    stage = root / "training" / "stages" / "styles"
    config = biax_keras.model_config(stage / "best.keras")
    assert config.styles == ("jsb_chorales", "musedata", "nottingham", "piano_midi_de")
    section = (root / "BENCHMARKS.md").read_text().split("## One model, four styles")[1]
    stretches = sorted(int(p.name.split("-")[1]) for p in stage.glob("stretch-*-history.csv"))
    assert stretches == list(range(1, len(stretches) + 1)) and len(stretches) >= 2
    for n in stretches:
        rows = list(csv.DictReader(open(stage / f"stretch-{n}-history.csv")))
        seconds = sum(float(r["seconds"]) for r in csv.DictReader(
            open(stage / f"stretch-{n}-epoch_times.csv")))
        best = min(rows, key=lambda r: float(r["val_frame_nll"]))
        assert (f"| {len(rows)} x " in section and f"| {seconds:,.0f} s | "
                f"{float(best['val_frame_nll']):.3f} (epoch {int(best['epoch']) + 1}) |" in section)


def test_a_style_model_fixed_in_one_style_is_a_plain_model_with_the_same_maths(tmp_path):
    """`styles.in_one_style`: the style's term folded into the first time-axis LSTM's bias;
    the result has no styles, scores as the style model does in that style (or blend),
    and saves and loads as any model."""
    from biax_keras.generation import styles as styles_lib
    from biax_keras.nn.model import BiaxialConfig, build_model

    model = build_model(BiaxialConfig(time_units=(6, 5), note_units=(4,), styles=("low", "high"),
                                      style_units=3, sampling={"temperature": 1.1}),
                        compile=False)
    rng = np.random.default_rng(0)
    model.set_weights([w + rng.normal(0, 0.3, w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    roll = (rng.random((2, 9, 78, 2)) < 0.1).astype("float32")
    inputs = {"roll": roll[:, :-1], "beat": np.tile(np.arange(8) % 16, (2, 1)).astype("int32"),
              "target": roll[:, 1:]}
    for spec, weights in (("high", [0.0, 1.0]), ("low=0.3,high=0.7", [0.3, 0.7])):
        plain = styles_lib.in_one_style(model, spec)
        assert plain.config.styles is None and plain.config.sampling == {"temperature": 1.1}
        want = model({**inputs, "style": np.tile(np.float32(weights), (2, 1))})
        np.testing.assert_allclose(plain(inputs), want, atol=1e-5)
        # Another style gives other probabilities: the style is in the bias.
        other = model({**inputs, "style": np.tile(np.float32([1.0, 0.0]), (2, 1))})
        assert np.abs(np.asarray(other) - np.asarray(want)).max() > 1e-3
    plain.save(tmp_path / "plain.keras")
    loaded = biax_keras.load_model(tmp_path / "plain.keras")
    np.testing.assert_allclose(loaded(inputs), plain(inputs), atol=1e-6)
    with pytest.raises(UserError, match="no styles"):
        styles_lib.in_one_style(plain, "high")


@pytest.mark.slow
def test_ship_fixes_a_style_model_in_one_style(two_styles, tmp_path):
    """`benchmarks/ship.py RUN DEST --style NAME`: a model without styles that scores a
    file of any name as the style model scores it in that style."""
    import subprocess
    import sys
    from pathlib import Path

    folder, low, high, _ = two_styles
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "ship.py"
    done = subprocess.run([sys.executable, str(script), str(folder / "run"),
                           str(tmp_path / "high"), "--style", "high"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["style"] == "high"
    shipped = biax_keras.load_model(tmp_path / "high")
    assert shipped.config.styles is None
    assert json.loads((tmp_path / "high" / "config.json").read_text())["model"]["styles"] is None
    renamed = tmp_path / "anything.json"
    renamed.write_text(json.dumps({"valid": HIGH[:2]}))
    fixed = evaluate.evaluate_model(str(tmp_path / "high"), str(renamed), "valid")
    styled = evaluate.evaluate_model(str(folder / "run"), str(renamed), "valid", style="high")
    assert fixed["frame_nll"] == pytest.approx(styled["frame_nll"], abs=1e-4)
    unknown = subprocess.run([sys.executable, str(script), str(folder / "run"),
                              str(tmp_path / "jazz"), "--style", "jazz"],
                             capture_output=True, text=True, timeout=300)
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines()[-1] == (
        "ship: --style: unknown style 'jazz'; this model knows low, high")
    assert not (tmp_path / "jazz").exists()


def test_the_readme_quotes_the_style_models_newest_piano_score():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    results = sorted((root / "benchmarks" / "results").glob(
        "styles-stretch-*-piano_midi_de-valid-*.json"),
        key=lambda p: int(p.name.split("-")[2]))
    newest = json.loads(results[-1].read_text())["frame_nll"]
    quoted = re.search(r"piano style \((\d\.\d{3})\)", (root / "README.md").read_text()).group(1)
    assert quoted == f"{newest:.3f}"


@pytest.mark.slow
def test_the_chorales_written_at_eighth_notes(tmp_path):
    """training/jsb_at_eighths.py, as benchmarks/styles.sh runs it: each step twice, and an
    existing file kept without --overwrite."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "training" / "jsb_at_eighths.py"
    source, out = tmp_path / "jsb-chorales-quarter.json", tmp_path / "jsb-chorales-8th.json"
    source.write_text(json.dumps({"train": [[[60, 64], []]], "valid": [[[62]]]}))
    done = subprocess.run([sys.executable, str(script), str(source), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == {"train": [[[60, 64], [60, 64], [], []]],
                                           "valid": [[[62], [62]]]}
    again = subprocess.run([sys.executable, str(script), str(source), str(out)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "--overwrite" in again.stderr
