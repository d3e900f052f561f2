"""benchmarks/ship.py: a run's best model into saved_models/, as a user runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_train import _Crash
from test_train_options import prepared, with_train  # noqa: F401  (the fixture)

import biax_keras
from biax_keras import train

# Training recipes, subprocesses and shipped models: the slow tier (`make test-all`).
pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "ship.py"


def _ship(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def test_an_unfinished_run_ships_its_best_checkpoint_without_the_optimizer(prepared, tmp_path):
    run, dest = tmp_path / "run", tmp_path / "saved" / "tiny"
    with pytest.raises(RuntimeError, match="crash"):
        train.train(prepared, run, with_train(epochs=3), callbacks=[_Crash(2, 1)], verbose=0)
    done = _ship(run, dest)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["finished"] is False and report["source"].endswith("checkpoints/best.keras")
    assert report["epochs_recorded"] == 2 and report["best_epoch"] in (1, 2)
    assert report["training_seconds"] > 0
    shipped = biax_keras.load_model(dest)
    best = biax_keras.load_model(run / "checkpoints" / "best.keras")
    for a, b in zip(shipped.get_weights(), best.get_weights()):
        np.testing.assert_array_equal(a, b)
    # No optimizer state: the file is smaller than the checkpoint that has one.
    assert (dest / "model.keras").stat().st_size < (run / "checkpoints" / "best.keras").stat().st_size
    assert json.loads((dest / "config.json").read_text()) == json.loads((run / "config.json").read_text())
    # Files a plain write would make: readable by whoever could read the folder.
    (tmp_path / "plain").write_text("")
    plain = (tmp_path / "plain").stat().st_mode & 0o777
    assert {(dest / n).stat().st_mode & 0o777 for n in ("model.keras", "config.json")} == {plain}

    # Shipping again is refused without --overwrite, in one line, the model untouched.
    before = (dest / "model.keras").read_bytes()
    again = _ship(run, dest)
    assert again.returncode == 2
    assert again.stderr.strip() == f"ship: {dest}/model.keras exists; add --overwrite to replace it"
    assert (dest / "model.keras").read_bytes() == before

    # The finished run ships its model.keras.
    train.train(prepared, run, with_train(epochs=3), verbose=0)
    finished = _ship(run, dest, "--overwrite")
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["finished"] is True
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "model.keras"]


def test_a_folder_without_a_model_is_one_line(tmp_path):
    done = _ship(tmp_path, tmp_path / "dest")
    assert done.returncode == 2
    assert "holds neither model.keras nor checkpoints/best.keras" in done.stderr
    assert not (tmp_path / "dest").exists()
