"""`biax benchmark train` (benchmarks/speed/train.py): runs on tiny shapes and reports
consistent numbers."""

import json
import sys
from pathlib import Path

import pytest

from biax_keras.app import cli
from biax_keras.nn.config import BiaxialConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.speed import train as bench  # noqa: E402

TINY = ROOT / "training" / "configs" / "tiny.json"


def test_flop_count_of_the_default_config():
    # Time axis 81 -> 300 -> 300, note axis 302 -> 100 -> 50, head 50 -> 2.
    expected = (2 * 4 * 300 * (81 + 300) + 2 * 4 * 300 * (300 + 300)
                + 2 * 4 * 100 * (302 + 100) + 2 * 4 * 50 * (100 + 50) + 2 * 50 * 2)
    assert bench.forward_flops_per_note_step(BiaxialConfig()) == expected == 2_736_200


def test_benchmark_runs_and_reports_ours_beside_the_floor(capsys):
    code = cli.main(["benchmark", "train", "--json", "--config", str(TINY), "--batch-size", "2",
                     "--window", "4", "--num-notes", "12", "--repeats", "2", "--batches", "1",
                     "--warmup", "1"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["note_steps_per_batch"] == 2 * 4 * 12
    for name in ("ours", "floor"):
        timing = result[name]
        assert len(timing["all_seconds_per_step"]) == 2
        assert timing["note_steps_per_s"] == pytest.approx(96 / timing["seconds_per_step"])
        assert timing["gflops"] == pytest.approx(
            3 * result["forward_flops_per_note_step"] * timing["note_steps_per_s"] / 1e9)
    assert result["ours_over_floor"] == pytest.approx(
        result["floor"]["seconds_per_step"] / result["ours"]["seconds_per_step"])
    assert result["matmul_gflops"] > 0 and result["dtype_policy"] == "float32"
