"""A model's own sampling controls (`BiaxialConfig.sampling`): kept in its config,
started from by `biax_keras.generate`, `biax generate`, the studio and an export,
overridden by what a user gives; and found by calibration against a collection."""

import json
import re
import zipfile

import numpy as np
import pytest
import tensorflow as tf

import biax_keras
from biax_keras.app import cli, studio
from biax_keras.errors import UserError
from biax_keras.generation import calibration
from biax_keras.sampling_controls import SamplingControls
from biax_keras.generation.export import export_model
from biax_keras.music import statistics
from biax_keras.nn.model import BiaxialConfig, build_model

OWN = {"temperature": 1.5, "conservativity": 3.0, "adaptive": True}
SIZES = dict(time_units=(10,), note_units=(8,), lowest_pitch=36, num_notes=24)


def _random(config):
    model = build_model(config, compile=False)
    rng = np.random.default_rng(3)
    for variable in model.weights:  # random weights: many notes play
        variable.assign(rng.normal(0.0, 0.8, variable.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A model with its own controls, saved, and the same weights without them."""
    model = _random(BiaxialConfig(**SIZES, sampling=OWN))
    plain = _random(BiaxialConfig(**SIZES))
    folder = tmp_path_factory.mktemp("own")
    model.save(folder / "own.keras")
    plain.save(folder / "plain.keras")
    return model, plain, folder


def test_the_config_keeps_and_checks_its_own_controls():
    config = BiaxialConfig.from_dict({**SIZES, "sampling": OWN})
    assert BiaxialConfig.from_json(config.to_json()) == config
    assert config.sampling_controls() == SamplingControls(**OWN)
    assert config.sampling_controls(temperature=0.5, adaptive=None) == SamplingControls(
        **{**OWN, "temperature": 0.5})
    assert BiaxialConfig().sampling_controls() == SamplingControls()
    for bad, words in [({"temp": 1.0}, "unknown control(s) temp"),
                       ({"temperature": 0}, "temperature must be a positive number"),
                       ({"adaptive": 1}, "adaptive must be True or False"),
                       ([1.0], "'sampling' must be a JSON object")]:
        with pytest.raises(UserError, match=words.replace("(", r"\(").replace(")", r"\)")):
            BiaxialConfig.from_dict({"sampling": bad})


def test_generate_starts_from_the_models_own_controls(own):
    model, _, _ = own
    mine = biax_keras.generate_batch(model, 2, 24, seed=4)
    np.testing.assert_array_equal(
        mine, biax_keras.generate_batch(model, 2, 24, seed=4, controls=SamplingControls(**OWN)))
    neutral = biax_keras.generate_batch(model, 2, 24, seed=4, controls=SamplingControls())
    assert not np.array_equal(mine, neutral)  # the own controls change the music
    # A keyword changes that control alone; the others stay the model's.
    np.testing.assert_array_equal(
        biax_keras.generate_batch(model, 2, 24, seed=4, temperature=1.0),
        biax_keras.generate_batch(model, 2, 24, seed=4,
                                  controls=SamplingControls(**{**OWN, "temperature": 1.0})))


def test_a_model_without_own_controls_composes_as_before(own):
    _, plain, folder = own
    assert plain.config.sampling is None
    np.testing.assert_array_equal(biax_keras.generate(plain, 24, seed=2),
                                  biax_keras.generate(plain, 24, seed=2,
                                                      controls=SamplingControls()))
    loaded = biax_keras.load_model(folder / "own.keras")
    assert loaded.config.sampling == OWN


@pytest.mark.slow
def test_biax_generate_uses_them_and_a_flag_wins(own, tmp_path, capsys):
    _, _, folder = own
    model = str(folder / "own.keras")

    def run(*flags):
        out = tmp_path / f"piece{len(list(tmp_path.iterdir()))}.mid"
        assert cli.main(["generate", "--model", model, "--out", str(out), "--steps", "16",
                         "--json", *flags]) == 0
        return json.loads(capsys.readouterr().out)

    report = run()
    assert {k: report[k] for k in OWN} == OWN
    report = run("--temperature", "0.8", "--no-adaptive")
    assert (report["temperature"], report["conservativity"], report["adaptive"]) == \
        (0.8, 3.0, False)
    with pytest.raises(SystemExit):
        cli.main(["generate", "--help"])
    assert "default: the model's own, else 1" in capsys.readouterr().out


def test_calibrated_defaults_are_written_into_the_keras_file(own, tmp_path):
    _, plain, _ = own
    run = tmp_path / "run"
    run.mkdir()
    plain.save(run / "model.keras")
    (run / "config.json").write_text(json.dumps({"model": plain.config.to_dict(), "train": {}}))
    with zipfile.ZipFile(run / "model.keras") as archive:
        weights = archive.read("model.weights.h5")
    calibration.write_defaults(run, {"temperature": 1.2, "adaptive": True})
    with zipfile.ZipFile(run / "model.keras") as archive:
        assert archive.read("model.weights.h5") == weights  # byte for byte
    assert biax_keras.model_config(run).sampling == {"temperature": 1.2, "adaptive": True}
    assert json.loads((run / "config.json").read_text())["model"]["sampling"] == \
        {"temperature": 1.2, "adaptive": True}
    loaded = biax_keras.load_model(run)
    np.testing.assert_array_equal(
        biax_keras.generate(loaded, 16, seed=1),
        biax_keras.generate(plain, 16, seed=1, temperature=1.2, adaptive=True))
    with pytest.raises(UserError, match="temperature must be a positive number"):
        calibration.write_defaults(run, {"temperature": -1})
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "model.keras"]  # no leftovers


@pytest.mark.slow
def test_an_export_carries_them(own, tmp_path):
    model, _, _ = own
    export_model(model, tmp_path / "exported")
    loaded = tf.saved_model.load(str(tmp_path / "exported"))
    defaults = {k: v.numpy().item() for k, v in loaded.sampling_defaults().items()}
    assert defaults == pytest.approx(SamplingControls(**OWN).to_dict())
    exported = biax_keras.load_model(tmp_path / "exported")
    np.testing.assert_array_equal(biax_keras.generate(exported, 16, seed=3),
                                  biax_keras.generate(model, 16, seed=3))


def test_the_studio_shows_and_uses_each_models_own(own, tmp_path):
    _, _, folder = own
    page = studio.Studio({"own": str(folder / "own.keras"), "plain": str(folder / "plain.keras")},
                         tmp_path)
    listed = {m["name"]: m["controls"] for m in page.model_list()}
    assert listed["own"] == SamplingControls(**OWN).to_dict()
    assert listed["plain"] == SamplingControls().to_dict()
    from biax_keras.generation import compose

    def rolls(answer):
        return page.pieces[answer["piece"]]["composition"].rolls

    model = page._model("own", None)[1]
    steps = compose.length_in_steps(model.config, seconds=2)
    mine = compose.compose(model, steps=steps, seed=1, controls=SamplingControls(**OWN)).rolls
    np.testing.assert_array_equal(rolls(page.compose({"model": "own", "seconds": 2, "seed": 1})),
                                  mine)  # no controls sent: the model's own
    changed = SamplingControls(**{**OWN, "temperature": 1.0})
    np.testing.assert_array_equal(
        rolls(page.compose({"model": "own", "seconds": 2, "seed": 1, "temperature": "1.0"})),
        compose.compose(model, steps=steps, seed=1, controls=changed).rolls)
    assert "showOwnControls" in studio.PAGE


def _roll(steps, notes, playing):
    roll = np.zeros((steps, notes, 2), np.uint8)
    for step, pitches in playing.items():
        roll[step, pitches, 0] = 1
    return roll


def test_distances_have_a_known_answer():
    """Twice the collection's onsets and notes: x2 density, each past its 1.25 bound."""
    notes = 24
    reference = [_roll(8, notes, {s: [0] for s in range(0, 8, 2)})]  # 4 onsets, 4 silent
    generated = [_roll(8, notes, {s: [0, 7] for s in range(0, 8, 2)})]
    values, shares = calibration.distances(statistics.set_statistics(generated, 60),
                                           statistics.set_statistics(reference, 60))
    assert values["onsets_per_step_ratio"] == pytest.approx(2.0)
    assert values["notes_sounding_ratio"] == pytest.approx(2.0)
    assert values["silent_share_difference"] == 0.0
    assert shares["onsets_per_step_ratio"] == pytest.approx(np.log(2) / np.log(1.25))
    thin = [_roll(8, notes, {0: [0], 4: [0]})]
    _, shares = calibration.distances(statistics.set_statistics(thin, 60),
                                      statistics.set_statistics(reference, 60))
    assert shares["onsets_per_step_ratio"] == pytest.approx(np.log(2) / -np.log(0.8))
    assert shares["silent_share_difference"] == pytest.approx(0.25 / 0.05)


def test_search_ranks_the_settings_against_a_collection(own):
    _, plain, _ = own
    collection = list(biax_keras.generate_batch(plain, 4, 32, seed=9))  # its own music
    grid = [{"conservativity": 6.0}, {"conservativity": 1.0}]
    rows = calibration.search(plain, collection, grid, samples=4, steps=32, seed=9)
    assert [row["controls"] for row in rows] == [{"conservativity": 1.0},
                                                 {"conservativity": 6.0}]
    assert rows[0]["score"] == 0.0 and rows[0]["within"]  # the collection itself
    assert "| 1 | 1 | no | x1.00 |" in calibration.table(rows)
    with pytest.raises(UserError, match="no pieces"):
        calibration.search(plain, [], grid)


@pytest.mark.slow
def test_a_run_config_can_give_the_model_its_own_controls(tmp_path):
    """`{"model": {"sampling": {...}}}` in a run's config reaches the trained model
    (and TensorBoard's hparams, which take only scalars, record it)."""
    from biax_keras import data, train

    steps = [[[48 + (t % 5)]] * 1 for t in range(40)]
    pieces = [[step[0] for step in steps]] * 4
    (tmp_path / "tiny.json").write_text(json.dumps({"train": pieces, "valid": pieces[:1]}))
    data.prepare(str(tmp_path / "tiny.json"), str(tmp_path / "data"), steps_per_quarter=1,
                 lowest_pitch=48, num_notes=12, workers=1)
    config = {"model": {"time_units": [4], "note_units": [4], "sampling": {"temperature": 1.3}},
              "train": {"epochs": 1, "batch_size": 2, "window": 8, "steps_per_epoch": 1,
                        "image_every": 0, "sample_every": 0}}
    report = train.train(tmp_path / "data", tmp_path / "run", config, verbose=0)
    assert biax_keras.model_config(report["model"]).sampling == {"temperature": 1.3}
    assert list((tmp_path / "run" / "logs").rglob("*.v2"))  # the hparams were written


# -- a style model's own controls per style (`BiaxialConfig.style_sampling`) -----

BY_STYLE = {"high": {"temperature": 2.0, "adaptive": True}}


@pytest.fixture(scope="module")
def by_style(tmp_path_factory):
    """A two-style model whose style "high" has controls of its own, saved."""
    model = _random(BiaxialConfig(**SIZES, styles=("low", "high"), style_units=3,
                                  sampling={"temperature": 1.2}, style_sampling=BY_STYLE))
    folder = tmp_path_factory.mktemp("by_style")
    model.save(folder / "styles.keras")
    return model, folder


def test_controls_mix_real_numbers_by_weight_and_take_the_rest_from_the_heaviest():
    a = {"temperature": 1.0, "conservativity": 2.0, "adaptive": False, "min_pitch": 10}
    b = {"temperature": 2.0, "conservativity": 1.0, "adaptive": True, "min_pitch": 40}
    assert SamplingControls.mix([a, b], [0.25, 0.75]) == {
        "temperature": 1.75, "conservativity": 1.25, "adaptive": True, "min_pitch": 40}
    assert SamplingControls.mix([a, b], [1, 1])["adaptive"] is False  # the first of equals
    assert SamplingControls.mix([a, b], [0, 3]) == b
    for weights in ([0, 0], [1], [-1, 2]):
        with pytest.raises(ValueError):
            SamplingControls.mix([a, b], weights)


def test_each_style_has_its_own_controls_and_a_blend_their_mix():
    config = BiaxialConfig(**SIZES, styles=("low", "high"), sampling={"temperature": 1.2},
                           style_sampling=BY_STYLE)
    assert BiaxialConfig.from_json(config.to_json()) == config
    assert config.own_sampling() == {"temperature": 1.2, "adaptive": False}  # the first style
    assert config.own_sampling([0.0, 1.0]) == {"temperature": 2.0, "adaptive": True}
    assert config.own_sampling([0.75, 0.25]) == {"temperature": 1.4, "adaptive": False}
    assert config.sampling_controls([0.0, 1.0], temperature=0.5) == SamplingControls(
        temperature=0.5, adaptive=True)
    # Without style_sampling every style has the model's own.
    plain = BiaxialConfig(**SIZES, styles=("low", "high"), sampling={"temperature": 1.2})
    assert plain.own_sampling([0.0, 1.0]) == {"temperature": 1.2}
    for values, words in [
            ({"styles": None, "style_sampling": BY_STYLE}, "this model has no styles"),
            ({"style_sampling": {"jazz": {}}}, "unknown style(s) jazz; the model's styles: low, high"),
            ({"style_sampling": {"high": {"temp": 1}}}, "of high names unknown control(s) temp"),
            ({"style_sampling": {"high": {"min_pitch": 90}}, "sampling": {"max_pitch": 80}},
             "of high: min_pitch (90) is above max_pitch (80)"),
            ({"style_sampling": [1]}, "must be a JSON object")]:
        with pytest.raises(UserError, match=re.escape(words)):
            BiaxialConfig.from_dict({**SIZES, "styles": ["low", "high"], **values})


def test_generate_uses_the_styles_own_controls(by_style):
    model, _ = by_style
    high = SamplingControls(temperature=2.0, adaptive=True)
    np.testing.assert_array_equal(
        biax_keras.generate(model, 16, seed=2, style="high"),
        biax_keras.generate(model, 16, seed=2, style="high", controls=high))
    np.testing.assert_array_equal(
        biax_keras.generate(model, 16, seed=2, style="low"),
        biax_keras.generate(model, 16, seed=2, style="low",
                            controls=SamplingControls(temperature=1.2)))
    blend = SamplingControls(temperature=1.4)
    np.testing.assert_array_equal(
        biax_keras.generate(model, 16, seed=2, style="low=0.75,high=0.25"),
        biax_keras.generate(model, 16, seed=2, style="low=0.75,high=0.25", controls=blend))


def test_biax_generate_and_the_studio_take_the_styles_own(by_style, tmp_path, capsys):
    _, folder = by_style
    out = tmp_path / "piece.mid"
    assert cli.main(["generate", "--model", str(folder / "styles.keras"), "--out", str(out),
                     "--steps", "8", "--style", "high", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["temperature"], report["adaptive"]) == (2.0, True)
    page = studio.Studio({"styles": str(folder / "styles.keras")}, tmp_path / "studio")
    (tmp_path / "studio").mkdir()
    assert page.model_list()[0]["style_controls"] is True
    assert page.own_controls("styles", "high")["temperature"] == 2.0
    assert page.own_controls("styles", "low=0.5,high=0.5")["temperature"] == pytest.approx(1.6)
    with pytest.raises(UserError, match="unknown style 'jazz'"):
        page.own_controls("styles", "jazz")
    assert "showStyleControls" in studio.PAGE and "/api/controls" in studio.PAGE


def test_calibration_writes_a_styles_own_controls(by_style, tmp_path):
    model, _ = by_style
    path = tmp_path / "styles.keras"
    model.save(path)
    calibration.write_defaults(path, {"temperature": 0.9}, style="low")
    config = biax_keras.model_config(path)
    assert config.style_sampling == {**BY_STYLE, "low": {"temperature": 0.9}}
    assert config.sampling == {"temperature": 1.2}
    calibration.write_defaults(path, None, style="high")
    assert biax_keras.model_config(path).style_sampling == {"low": {"temperature": 0.9}}
    with pytest.raises(UserError, match="unknown style"):
        calibration.write_defaults(path, {"temperature": 0.9}, style="jazz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["styles.keras"]


@pytest.mark.slow
def test_an_export_mixes_the_styles_own_controls(by_style, tmp_path):
    model, _ = by_style
    export_model(model, tmp_path / "exported")
    loaded = tf.saved_model.load(str(tmp_path / "exported"))
    for weights in ([1.0, 0.0], [0.0, 1.0], [0.3, 0.7], [0.5, 0.5]):
        defaults = {k: v.numpy().item() for k, v in
                    loaded.sampling_defaults(style=tf.constant(weights)).items()}
        assert defaults == pytest.approx(model.config.sampling_controls(weights).to_dict())
    exported = biax_keras.load_model(tmp_path / "exported")
    np.testing.assert_array_equal(biax_keras.generate(exported, 16, seed=3, style="high"),
                                  biax_keras.generate(model, 16, seed=3, style="high"))


@pytest.mark.parametrize("model_grid", [1, 2])
def test_calibrate_sampling_writes_the_styles_own(tmp_path, monkeypatch, model_grid):
    """benchmarks/calibrate_sampling.py NAME --model-path M --write: a style model's
    best setting becomes that style's own; the collection is read on the model's grid."""
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    from benchmarks import calibrate_sampling

    config = BiaxialConfig(time_units=(6,), note_units=(4,), lowest_pitch=36, num_notes=24,
                           steps_per_quarter=model_grid, styles=("jsb_chorales", "nottingham"),
                           style_units=2, sampling={"temperature": 1.1})
    model_path = tmp_path / "styles.keras"
    build_model(config, compile=False).save(model_path)
    shared = tmp_path / "shared"
    (shared / "jsb").mkdir(parents=True)
    piece = [[48, 52, 55], [48, 52, 55], [50, 53, 57], []]
    (shared / "jsb" / "jsb-chorales-quarter.json").write_text(json.dumps({"valid": [piece]}))
    monkeypatch.setattr(calibrate_sampling, "SHARED", shared)
    seen = {}
    rows = [{"controls": {"temperature": 1.3, "conservativity": 1.0, "adaptive": False},
             "outside": []},
            {"controls": {"temperature": 1.0, "conservativity": 1.0, "adaptive": False},
             "outside": ["interval_kl"]}]

    def search(model, reference, grid, samples, style):
        seen.update(style=style, steps=[len(r) for r in reference])
        return rows

    monkeypatch.setattr(calibration, "search", search)
    monkeypatch.setattr(calibration, "table", lambda rows: "")
    monkeypatch.setattr(sys, "argv", ["calibrate_sampling.py", "jsb_chorales", "--model-path",
                                      str(model_path), "--results", str(tmp_path), "--write"])
    calibrate_sampling.main()
    assert seen == {"style": "jsb_chorales", "steps": [4 * model_grid]}
    written = biax_keras.model_config(model_path)
    assert written.style_sampling == {"jsb_chorales": rows[0]["controls"]}
    assert written.sampling == {"temperature": 1.1}  # the model's own, beneath
    monkeypatch.setattr(sys, "argv", sys.argv[:-1] + ["--style", "jsb_chorales=0.5,nottingham=0.5",
                                                      "--write"])
    with pytest.raises(SystemExit, match="a blend has none of its own"):
        calibrate_sampling.main()
