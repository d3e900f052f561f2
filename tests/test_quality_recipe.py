"""The quality recipe (`make bench-quality DATASET=...`, benchmarks/quality.sh),
run the way a user runs it, on a tiny file in the datasets' JSON format."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# Training recipes, subprocesses and shipped models: the slow tier (`make test-all`).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "benchmarks" / "quality.sh"

# Rising and falling C-major triads in eighth notes, two bars each.
_UP = [[60, 64, 67], [62, 65, 69], [64, 67, 71], [65, 69, 72]] * 4
_DOWN = list(reversed(_UP))
TINY = {"train": [_UP, _DOWN, _UP[2:] + _DOWN[:2]], "valid": [_DOWN, _UP]}
TINY_CONFIG = {
    "model": {"time_units": [4], "note_units": [4], "dropout": 0.0, "lowest_pitch": 21,
              "num_notes": 88, "steps_per_quarter": 2, "play_only": True},
    "train": {"epochs": 2, "batch_size": 2, "window": 4, "steps_per_epoch": 2,
              "learning_rate": 0.01, "image_every": 0, "sample_every": 0},
}


def _environment(tmp_path, **env):
    """The recipe's environment: this biax, and every folder under tmp_path."""
    environment = dict(
        os.environ, TF_CPP_MIN_LOG_LEVEL="2", BIAX=str(Path(sys.executable).parent / "biax"),
        DATA_DIR=str(tmp_path / "shared"), RUNS=str(tmp_path / "runs"),
        PREPARED=str(tmp_path / "data"), RESULTS=str(tmp_path / "results"))
    environment.update(env)
    return environment


def _recipe(tmp_path, *args, **env):
    return subprocess.run(["bash", str(RECIPE), *args], env=_environment(tmp_path, **env),
                          capture_output=True, text=True, timeout=600)


def test_recipe_prepares_trains_and_scores_valid_and_train(tmp_path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "nottingham.json").write_text(json.dumps(TINY))
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY_CONFIG))
    done = _recipe(tmp_path, "nottingham", CONFIG=str(config))
    assert done.returncode == 0, done.stderr
    scores = {}
    for path in (tmp_path / "results").glob("quality-nottingham-*.json"):
        split = path.name.split("-")[2]
        scores[split] = json.loads(path.read_text())
    assert set(scores) == {"valid", "train"}
    assert scores["valid"]["pieces"] == 2 and scores["valid"]["steps"] == 32
    assert scores["train"]["pieces"] == 3
    # 88 notes scored play only: a useless model is near 88 * ln 2 = 61 nats.
    assert 0 < scores["valid"]["frame_nll"] < 88 * 0.7
    model = tmp_path / "runs" / "nottingham" / "model.keras"
    stamp = model.stat().st_mtime_ns

    # Running it again reuses the prepared data and the finished run.
    again = _recipe(tmp_path, "nottingham", CONFIG=str(config))
    assert again.returncode == 0, again.stderr
    assert model.stat().st_mtime_ns == stamp


def test_later_stages_fine_tune_the_best_weights_and_the_last_is_scored(tmp_path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "nottingham.json").write_text(json.dumps(TINY))
    config = tmp_path / "tiny.json"
    long_configs = [tmp_path / "tiny-long.json", tmp_path / "tiny-long2.json"]
    config.write_text(json.dumps(TINY_CONFIG))
    for path, window in zip(long_configs, (8, 12)):
        path.write_text(json.dumps({**TINY_CONFIG, "train": {
            **TINY_CONFIG["train"], "window": window, "epochs": 1, "learning_rate": 1e-4}}))
    done = _recipe(tmp_path, "nottingham", CONFIG=str(config),
                   LONG_CONFIG=" ".join(map(str, long_configs)))
    assert done.returncode == 0, done.stderr
    stages = [tmp_path / "runs" / name for name in ("nottingham", "nottingham-long", "nottingham-long2")]
    assert [json.loads((run / "config.json").read_text())["train"]["window"]
            for run in stages[1:]] == [8, 12]
    # Each starts from the stage before's best weights (2 Adam steps of 1e-4
    # move each weight by at most about 2e-4; a fresh start would be far from
    # them) and trains them on, and the last stage's model is the one scored.
    import biax_keras

    for before, after in zip(stages, stages[1:]):
        best = biax_keras.load_model(before / "model.keras").get_weights()
        tuned = biax_keras.load_model(after / "model.keras").get_weights()
        assert all(np.allclose(a, b, rtol=0, atol=1e-3) for a, b in zip(best, tuned))
        assert any(not np.array_equal(a, b) for a, b in zip(best, tuned))
    valid = json.loads(next((tmp_path / "results").glob("quality-nottingham-valid-*.json")).read_text())
    scored = subprocess.run(
        [str(Path(sys.executable).parent / "biax"), "evaluate", "--model", str(stages[2]), "--data",
         str(tmp_path / "shared" / "nottingham.json"), "--split", "valid", "--steps-per-quarter",
         "2", "--json"], capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert json.loads(scored.stdout)["frame_nll"] == pytest.approx(valid["frame_nll"], abs=1e-9)

    # A config given in CONFIG (an ablation) has no second stage unless LONG_CONFIG names one.
    alone = _recipe(tmp_path, "nottingham", CONFIG=str(config), RUNS=str(tmp_path / "alone"))
    assert alone.returncode == 0, alone.stderr
    assert not (tmp_path / "alone" / "nottingham-long").exists()


@pytest.mark.parametrize("args, message", [
    (("bach",), "unknown dataset 'bach'"),
    (("musedata",), "musedata.json not found"),
])
def test_recipe_refuses_in_one_line(tmp_path, args, message):
    done = _recipe(tmp_path, *args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_make_jsb_is_the_jsb_chorales_recipe_on_the_jsb_folder(tmp_path):
    """`make jsb` (README, the JSB card) runs the same recipe on JSB_DIR's file."""
    jsb_dir = tmp_path / "jsb"
    jsb_dir.mkdir()
    quarter = {split: [piece[::2] for piece in pieces]
               for split, pieces in TINY.items()}
    (jsb_dir / "jsb-chorales-quarter.json").write_text(json.dumps(quarter))
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY_CONFIG,
                                  "model": {**TINY_CONFIG["model"], "steps_per_quarter": 1}}))
    # -o: take the virtual environment as it is (the test runs inside it).
    # The recipe's DATA_DIR is make's JSB_DIR.
    done = subprocess.run(["make", "-s", "-o", ".venv/.installed", "jsb", f"JSB_DIR={jsb_dir}"],
                          cwd=ROOT, env=_environment(tmp_path, CONFIG=str(config)),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "runs" / "jsb_chorales" / "model.keras").is_file()
    valid = json.loads(next((tmp_path / "results").glob("quality-jsb_chorales-valid-*.json")).read_text())
    assert valid["pieces"] == 2 and valid["steps"] == 16


FAKE_BIAX = r"""#!/usr/bin/env bash
# Stands in for biax: the recipe's steps, in a moment each.
out=
for ((i = 1; i <= $#; i++)); do [ "${!i}" = --out ] && { j=$((i + 1)); out=${!j}; }; done
case "$1" in
  prepare) mkdir -p "$out" && touch "$out/meta.json" ;;
  train) touch "$TRAINING"; sleep 4; mkdir -p "$out" && touch "$out/model.keras" ;;
  evaluate) echo '{"frame_nll": 1.0}' ;;
esac
"""


def test_the_recipe_can_be_edited_while_it_trains(tmp_path):
    """A training runs for days under the script; editing it meanwhile (a new
    stage, a comment) must not derail the run when its training ends."""
    import shutil
    import time

    script = tmp_path / "repo" / "benchmarks" / "quality.sh"
    script.parent.mkdir(parents=True)
    shutil.copy(RECIPE, script)
    fake = tmp_path / "biax"
    fake.write_text(FAKE_BIAX)
    fake.chmod(0o755)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "nottingham.json").write_text(json.dumps(TINY))
    training = tmp_path / "training"
    environment = _environment(tmp_path, BIAX=str(fake), TRAINING=str(training),
                               CONFIG=str(tmp_path / "unused.json"))
    run = subprocess.Popen(["bash", str(script), "nottingham"], env=environment,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not training.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert training.exists(), run.communicate()
    text = script.read_text()
    script.write_text(text.replace("set -euo pipefail\n", "set -euo pipefail\n" + "# edited\n" * 40))
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 0, stderr
    assert "valid: " in stdout and "train: " in stdout


def _stage_before(path):
    """`x-long.json` fine-tunes `x.json`'s weights, `x-long2.json` `x-long.json`'s, ..."""
    stem, stage = re.fullmatch(r"(.+)-long(\d*)\.json", path.name).groups()
    stage = int(stage or 1)
    before = "" if stage == 1 else "-long" if stage == 2 else f"-long{stage - 1}"
    return path.with_name(f"{stem}{before}.json")


@pytest.mark.parametrize("long_config", sorted((ROOT / "training" / "configs").glob("*-long*.json")),
                         ids=lambda path: path.stem)
def test_each_later_stage_keeps_the_network_of_the_stage_before(long_config):
    """A `<config>-long.json` fine-tunes `<config>.json`'s weights (`--init`), a
    `<config>-long2.json` those of `<config>-long.json`, and so on: each must
    have the stage before it, the way quality.sh finds it, with the same network."""
    from biax_keras import train

    before = _stage_before(long_config)
    assert before.exists(), f"{long_config.name} has no stage before it, {before.name}"
    first_model, first_train = train.resolve_config(before)
    second_model, second_train = train.resolve_config(long_config)
    assert second_model == first_model
    # What makes it a later stage: longer windows at a lower learning rate.
    assert second_train.window > first_train.window
    assert second_train.learning_rate < first_train.learning_rate
