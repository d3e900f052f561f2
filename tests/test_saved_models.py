"""The pretrained models shipped in saved_models/: `make demo` composes with one,
and each model card's promises hold as written."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import biax_keras

# Training recipes, subprocesses and shipped models: the slow tier (`make test-all`).
pytestmark = pytest.mark.slow

SAVED = Path(__file__).resolve().parent.parent / "saved_models"
sys.path.insert(0, str(SAVED.parent))
from benchmarks.recorded import newest  # noqa: E402
SHIPPED = {
    # folder: (lowest pitch, notes, steps per quarter, play only)
    "bach": (24, 78, 4, False),
    "jsb_chorales": (21, 88, 1, True),
    "piano_midi_de": (21, 88, 2, True),
    "nottingham": (21, 88, 2, True),
    "musedata": (21, 88, 2, True),
    "styles": (21, 88, 2, True),  # four styles; tests/test_styles_model.py
}
# The four benchmarks' models (the style model's held-out command names a style:
# tests/test_styles_model.py).
BENCHMARK_MODELS = ["jsb_chorales", "musedata", "nottingham", "piano_midi_de"]
# Each shipped model stays small enough to live in the repository.
MAX_BYTES = 10 * 2**20


def test_every_shipped_folder_is_listed():
    assert sorted(p.name for p in SAVED.iterdir() if p.is_dir()) == sorted(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_loads_and_composes(name):
    folder = SAVED / name
    assert (folder / "MODEL_CARD.md").is_file()
    assert (folder / "model.keras").stat().st_size <= MAX_BYTES
    model = biax_keras.load_model(folder)
    config = model.config
    lowest, notes, per_quarter, play_only = SHIPPED[name]
    assert (config.lowest_pitch, config.num_notes, config.steps_per_quarter,
            config.play_only) == (lowest, notes, per_quarter, play_only)
    roll = biax_keras.generate(model, steps=16, seed=1)
    assert roll.shape == (16, notes, 2) and roll.dtype == np.uint8
    assert np.all(roll[..., 1] <= roll[..., 0])


@pytest.mark.parametrize("name", sorted(BENCHMARK_MODELS))
def test_benchmark_card_scores_a_test_split_as_written(name, tmp_path):
    # The cards promise `biax evaluate --model saved_models/NAME --data FILE
    # --split test` on any file in the benchmarks' JSON format.
    card = (SAVED / name / "MODEL_CARD.md").read_text()
    assert f"biax evaluate --model saved_models/{name} --data" in card and "--split test" in card
    piece = [[48, 60, 64, 67], [48, 60, 64, 67], [43, 59, 62, 67], [48, 60, 64, 72]] * 3
    path = tmp_path / "benchmark.json"
    path.write_text(json.dumps({"train": [piece], "test": [piece, piece[4:]]}))
    done = subprocess.run(
        [str(Path(sys.executable).with_name("biax")), "evaluate", "--model",
         str(SAVED / name), "--data", str(path), "--split", "test", "--json"],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0, done.stderr
    scores = json.loads(done.stdout)
    assert scores["pieces"] == 2 and scores["steps"] == 20 and scores["split"] == "test"
    assert 0 < scores["frame_nll"] < 88 * np.log(2)


@pytest.mark.parametrize("name", ["piano_midi_de", "nottingham", "musedata"])
def test_benchmark_card_composes_as_written(name, tmp_path):
    card = (SAVED / name / "MODEL_CARD.md").read_text()
    found = re.search(rf"^    (biax generate --model saved_models/{name} .*)$", card, re.M)
    assert found, f"{name}'s card shows no generate command"
    command = found.group(1)
    if name == "piano_midi_de":  # the README shows the same command
        assert command == ("biax generate --model saved_models/piano_midi_de --out out/piano.mid "
                           "--seconds 30 --seed 1 --wav")
        assert f".venv/bin/{command}" in (SAVED.parent / "README.md").read_text()
    argv = command.split()
    argv[0] = str(Path(sys.executable).with_name("biax"))
    argv[argv.index("--model") + 1] = str(SAVED / name)
    out = Path(tmp_path / argv[argv.index("--out") + 1])
    out.parent.mkdir()
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 100
    assert out.with_suffix(".wav").stat().st_size > 44_100


def test_piano_plays_more_with_conservativity_below_one():
    # The card's advice: P(play) ** c with c < 1 raises every P(play).
    model = biax_keras.load_model(SAVED / "piano_midi_de")
    plain = biax_keras.generate_batch(model, 4, 128, seed=3)
    eager = biax_keras.generate_batch(model, 4, 128, seed=3, conservativity=0.5)
    assert eager[..., 0].sum() > 1.2 * plain[..., 0].sum()


def test_piano_card_per_piece_figures_as_written():
    """The piano card's per-piece command, typed as written, gives its figures."""
    root = SAVED.parent
    card = (SAVED / "piano_midi_de" / "MODEL_CARD.md").read_text()
    found = re.search(r"^    (biax evaluate .* \\\n\s+.* --per-piece)$", card, re.M)
    assert found, "the piano card shows no --per-piece command"
    argv = found.group(1).replace("\\\n", " ").split()
    source = root / argv[argv.index("--data") + 1]
    if not source.is_file():
        pytest.skip(f"{source} is not here")
    argv[0] = str(Path(sys.executable).with_name("biax"))
    done = subprocess.run(argv + ["--json"], cwd=root, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0, done.stderr
    pieces = json.loads(done.stdout)["per_piece"]
    assert len(pieces) == 12
    nll = [round(p["frame_nll"], 2) for p in pieces]
    # The card's claim: pieces 6 and 10 are the two hardest, and it quotes their figures.
    assert sorted(nll)[-2:] == sorted([nll[6], nll[10]])
    assert f"score {nll[6]:.2f}\nand {nll[10]:.2f}" in card
    rest = [p for i, p in enumerate(pieces) if i not in (6, 10)]
    steps = sum(p["steps"] for p in rest)
    mean = sum(p["frame_nll"] * p["steps"] for p in rest) / steps
    low, high = min(p["frame_nll"] for p in rest), max(p["frame_nll"] for p in rest)
    assert f"{low:.2f} to {high:.2f}, {mean:.2f} over their {steps:,} steps" in card
    assert f"the median piece {np.median([p['frame_nll'] for p in pieces]):.2f}" in card


# The four benchmark models: folder -> their column in BENCHMARKS.md's table.
BENCHMARK_COLUMNS = {"jsb_chorales": 0, "musedata": 1, "nottingham": 2, "piano_midi_de": 3}


def newest_result(stem):
    """The newest benchmarks/results/`stem`-DATE.json, read (not `stem`-TAG-DATE.json)."""
    found = newest(stem)
    assert found, f"no benchmarks/results/{stem}-DATE.json"
    return json.loads(found.read_text())


def recorded_scores(name, split):
    """The newest `biax evaluate --json` figures benchmarks/quality.sh wrote for `name`."""
    return newest_result(f"quality-{name}-{split}")


@pytest.mark.parametrize("name", sorted(BENCHMARK_COLUMNS))
def test_quoted_scores_are_the_recorded_ones(name):
    """The card, the README and BENCHMARKS quote the scores quality.sh recorded."""
    card = (SAVED / name / "MODEL_CARD.md").read_text()
    readme = (SAVED.parent / "README.md").read_text()
    bench = (SAVED.parent / "BENCHMARKS.md").read_text()
    valid, train = recorded_scores(name, "valid"), recorded_scores(name, "train")
    for split, scores in (("valid", valid), ("train", train)):
        row = (f"| {split} | {scores['pieces']} | {scores['steps']:,} | "
               f"{scores['frame_nll']:.3f} | {scores['accuracy']:.3f} |")
        assert row in card, f"{name}'s card lacks the row {row}"
    assert (f"| `saved_models/{name}` | **{valid['frame_nll']:.3f}** | "
            f"{valid['accuracy']:.3f} |") in readme
    column = BENCHMARK_COLUMNS[name]

    def cell(prefix):
        line = next(line for line in bench.splitlines() if line.startswith(prefix))
        return line.split("|")[3 + column].strip()

    assert cell("| **biax_keras** (`saved_models/`) | **valid** |") == f"**{valid['frame_nll']:.3f}**"
    assert cell("| biax_keras (`saved_models/`) | train |") == f"{train['frame_nll']:.3f}"
    assert cell("| frame accuracy, valid |") == f"{valid['accuracy']:.3f}"


def test_jsb_model_scores_what_was_recorded():
    """The shipped JSB weights are the ones scored: a fresh `biax evaluate` agrees."""
    source = SAVED.parent.parent / "shared" / "data" / "polyphonic" / "jsb-chorales-quarter.json"
    if not source.is_file():
        pytest.skip(f"{source} is not here")
    done = subprocess.run(
        [str(Path(sys.executable).with_name("biax")), "evaluate", "--model",
         str(SAVED / "jsb_chorales"), "--data", str(source), "--split", "valid",
         "--steps-per-quarter", str(SHIPPED["jsb_chorales"][2]), "--json"],
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0, done.stderr
    scores = json.loads(done.stdout)
    recorded = recorded_scores("jsb_chorales", "valid")
    assert scores["steps"] == recorded["steps"]
    assert scores["frame_nll"] == pytest.approx(recorded["frame_nll"], abs=1e-4)
    assert scores["accuracy"] == pytest.approx(recorded["accuracy"], abs=1e-4)
