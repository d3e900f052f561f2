"""The model cards' "samples against the collection" tables: quoted as recorded, and the
command that records them, as the cards write it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.recorded import newest  # noqa: E402

MODELS = ["piano_midi_de", "musedata", "nottingham", "jsb_chorales", "bach"]


@pytest.mark.parametrize("name", MODELS)
def test_the_card_quotes_the_recorded_figures(name):
    card = (ROOT / "saved_models" / name / "MODEL_CARD.md").read_text()
    section = card[card.index("## Samples against the collection"):]
    recorded = json.loads(newest(f"against-collection-{name}").read_text())
    within = recorded["comparison"]["against_collection"]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 6 and cells[5] in ("yes", "**no**"):
            rows[cells[0]] = cells[3]  # label -> measure
    for label, figure in (("note onsets per step", "onsets_per_step_ratio"),
                          ("notes sounding per step", "notes_sounding_ratio"),
                          ("silent steps", "silent_share_difference"),
                          ("pitch classes in key (KL)", "pitch_class_in_key_kl"),
                          ("vertical intervals (KL)", "interval_kl")):
        digits = len(rows[label].split(".")[1])
        assert float(rows[label]) == round(within[figure]["value"], digits), (name, label)
    accuracy = recorded["comparison"]["two_sample"]["accuracy"]
    assert f"from the collection {accuracy:.2f} of the time" in section


@pytest.mark.parametrize("name", MODELS)
def test_the_card_says_which_controls_the_model_composes_with(name):
    """A model's own sampling controls are what its card says its samples used."""
    import biax_keras

    own = biax_keras.model_config(ROOT / "saved_models" / name).sampling
    card = (ROOT / "saved_models" / name / "MODEL_CARD.md").read_text()
    section = card[card.index("## Samples against the collection"):]
    if own:
        # The controls away from their neutral values, as the card names them.
        changed = {key: value for key, value in own.items()
                   if value != {"temperature": 1.0, "conservativity": 1.0,
                                "adaptive": False}.get(key, value)}
        words = ", ".join(f"{key} {value:g}" if not isinstance(value, bool) else key
                          for key, value in changed.items())
        assert f"the model's own sampling controls, {words})" in section
        quoted = ", ".join(f'"{key}": {json.dumps(value)}' for key, value in changed.items())
        assert f'"sampling": {{{quoted}}}' in section
    else:
        assert "own sampling controls" not in section


@pytest.mark.slow
def test_the_cards_command_measures_a_model(tmp_path):
    if not (ROOT.parent / "shared" / "data" / "jsb" / "jsb-chorales-quarter.json").is_file():
        pytest.skip("../shared/data/jsb/jsb-chorales-quarter.json is not here")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "against_collection.py"),
                           "jsb_chorales", "--results", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("| model | onsets/step")
    result = json.loads(next(tmp_path.glob("against-collection-jsb_chorales-*.json")).read_text())
    recorded = json.loads(newest("against-collection-jsb_chorales").read_text())
    # The same model, settings and seed compose the same pieces: the same figures.
    assert result["comparison"]["against_collection"] == recorded["comparison"]["against_collection"]


@pytest.mark.slow
def test_continuations_keep_the_collections_density(tmp_path):
    """The continuation test: primed with the first 8 bars of 8 valid pieces, the next 60 s
    keep the collection's density (the JSB model; BENCHMARKS.md has every model's)."""
    if not (ROOT.parent / "shared" / "data" / "jsb" / "jsb-chorales-quarter.json").is_file():
        pytest.skip("../shared/data/jsb/jsb-chorales-quarter.json is not here")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "against_collection.py"),
                           "jsb_chorales", "--continuation", "--results", str(tmp_path)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(next(tmp_path.glob("against-collection-jsb_chorales-continuation-*.json"))
                        .read_text())
    within = result["comparison"]["against_collection"]
    for figure in ("onsets_per_step_ratio", "notes_sounding_ratio", "silent_share_difference"):
        assert within[figure]["within"], (figure, within[figure])
    assert result["settings"]["continuation_of_bars"] == 8
    recorded = json.loads(newest("against-collection-jsb_chorales-continuation").read_text())
    assert within == recorded["comparison"]["against_collection"]


def test_a_model_on_a_finer_grid_is_compared_on_its_grid(tmp_path, monkeypatch):
    """The style model composes the chorales at eighth notes: its reference is the
    quarter-note file with each step written twice, as it learned them."""
    import types

    import biax_keras
    from benchmarks import against_collection

    (tmp_path / "jsb").mkdir()
    quarters = {"valid": [[[60, 64], [62], []]], "train": [[[60]]]}
    (tmp_path / "jsb" / "jsb-chorales-quarter.json").write_text(json.dumps(quarters))
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    grids = {}
    monkeypatch.setattr(biax_keras, "model_config",
                        lambda path: types.SimpleNamespace(steps_per_quarter=grids["model"]))
    grids["model"] = 1
    assert against_collection.reference_on_grid("jsb_chorales", tmp_path / "a") == (
        tmp_path / "jsb" / "jsb-chorales-quarter.json", 1)
    grids["model"] = 2
    path, steps_per_quarter = against_collection.reference_on_grid("jsb_chorales", tmp_path / "b")
    assert steps_per_quarter == 2
    # `biax evaluate` reads a resolution a file's name states before the flag's.
    from biax_keras.music import jsb
    assert jsb.steps_per_quarter_of_name(path) in (None, 2)
    assert json.loads(path.read_text())["valid"] == [[[60, 64], [60, 64], [62], [62], [], []]]
    grids["model"] = 3
    with pytest.raises(SystemExit, match="not a multiple"):
        against_collection.reference_on_grid("musedata", tmp_path / "c")
