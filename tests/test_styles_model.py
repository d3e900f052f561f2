"""The shipped style model, saved_models/styles: its card quotes what was recorded,
and its commands, typed as written, do what it says."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import biax_keras

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.against_collection import table  # noqa: E402
from benchmarks.recorded import newest  # noqa: E402

FOLDER = ROOT / "saved_models" / "styles"
STYLES = ["jsb_chorales", "musedata", "nottingham", "piano_midi_de"]
BIAX = str(Path(sys.executable).with_name("biax"))
QUIET = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def card():
    return (FOLDER / "MODEL_CARD.md").read_text()


def scored(style):
    """The recorded valid scores the card names for `style`."""
    found = re.search(rf"styles-stretch-(\d+)-NAME-valid-(\d{{4}}-\d\d-\d\d)\.json", card())
    assert found, "the card names no scores file"
    stretch, date = found.groups()
    return json.loads((ROOT / "benchmarks" / "results" /
                       f"styles-stretch-{stretch}-{style}-valid-{date}.json").read_text())


def test_the_model_knows_the_four_styles_and_its_controls():
    config = biax_keras.model_config(FOLDER)
    assert list(config.styles) == STYLES
    assert (config.lowest_pitch, config.num_notes, config.steps_per_quarter, config.play_only) == (
        21, 88, 2, True)
    # The card's table of each style's own controls is the model's.
    for style in STYLES:
        own = config.sampling_controls([float(s == style) for s in STYLES])
        assert (f"| {style} | {own.temperature:g} | {own.conservativity:g} | "
                f"{'yes' if own.adaptive else 'no'} |") in card()
    assert "(seed 1; each style's own sampling controls, above)" in card()


@pytest.mark.parametrize("style", STYLES)
def test_the_card_quotes_the_recorded_valid_scores(style):
    scores = scored(style)
    assert scores["style"] == {style: 1.0} and scores["split"] == "valid"
    row = (f"| {style} | {scores['pieces']} | {scores['steps']:,} | {scores['frame_nll']:.3f} | "
           f"{scores['accuracy']:.3f} |")
    assert row in card()


def test_the_jsb_figure_per_quarter_note_is_twice_the_eighth_notes():
    assert f"twice the figure,\n{2 * scored('jsb_chorales')['frame_nll']:.3f}, is its NLL" in card()


def test_the_training_time_is_the_stretches():
    seconds = []
    for number in (1, 2, 3):
        lines = (ROOT / "training" / "stages" / "styles" /
                 f"stretch-{number}-epoch_times.csv").read_text().split()[1:]
        seconds.append(round(sum(float(line.split(",")[1]) for line in lines)))
    assert f"{sum(seconds):,} s ({' + '.join(f'{s:,}' for s in seconds)} s" in card()


@pytest.mark.parametrize("style", STYLES)
def test_the_card_quotes_the_recorded_samples(style):
    recorded = json.loads(newest(f"against-collection-{style}-styles").read_text())
    assert recorded["style"] == style and recorded["settings"]["flags"] == "defaults"
    row = table([recorded]).splitlines()[-1]
    assert row in card()


def test_the_card_quotes_the_calibration():
    rows = {}
    for style in STYLES:
        found = newest(f"calibration-{style}-styles-stretch-3")
        for row in json.loads(found.read_text())["rows"]:
            rows.setdefault(row["controls"]["temperature"], []).append(f"{row['score']:.2f}")
    for temperature, scores in rows.items():
        assert f"| {temperature:g} | {' | '.join(scores)} |" in card()


def test_the_blend_table_is_the_recorded_one():
    alone = {name: json.loads(newest(f"against-collection-{name}-styles").read_text())["generated"]
             for name in ("nottingham", "piano_midi_de")}
    blend = json.loads(newest("against-collection-nottingham-styles-blend").read_text())
    assert blend["style"] == "nottingham=0.5,piano_midi_de=0.5"
    mixed = blend["generated"]
    for label, key, form in (("onsets per step", "onsets_per_step", "{:.2f}"),
                             ("mean pitch range (semitones)", "pitch_range_mean", "{:.1f}"),
                             ("notes in key", "in_scale_share", "{:.1%}"),
                             ("notes sounding per step", "polyphony_mean", "{:.2f}"),
                             ("mean note length (steps)", "note_length_mean", "{:.2f}")):
        cells = [form.format(g[key]) for g in (alone["nottingham"], mixed, alone["piano_midi_de"])]
        assert f"| {label} | {' | '.join(cells)} |" in card(), label
        low, high = sorted([alone["nottingham"][key], alone["piano_midi_de"][key]])
        between = low <= mixed[key] <= high
        line = next(line for line in card().splitlines() if line.startswith(f"| {label} |"))
        assert line.endswith("| yes |") == between, label


@pytest.mark.slow
def test_the_cards_evaluate_command_gives_the_recorded_score():
    found = re.search(r"^    (biax evaluate --model saved_models/styles --data \.\./\S+ "
                      r"--split valid --style (\w+))$", card(), re.M)
    assert found, "the card shows no evaluate command"
    argv = found.group(1).split()
    if not (ROOT / argv[argv.index("--data") + 1]).is_file():
        pytest.skip(f"{argv[argv.index('--data') + 1]} is not here")
    done = subprocess.run([BIAX] + argv[1:] + ["--json"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=QUIET)
    assert done.returncode == 0, done.stderr
    scores, recorded = json.loads(done.stdout), scored(found.group(2))
    assert scores["steps"] == recorded["steps"]
    assert scores["frame_nll"] == pytest.approx(recorded["frame_nll"], abs=1e-4)


@pytest.mark.slow
def test_the_cards_generate_commands_compose(tmp_path):
    commands = re.findall(r"^    (biax generate --model saved_models/styles .*)$", card(), re.M)
    assert len(commands) == 2, "the card shows a style and a blend"
    (tmp_path / "out").mkdir()
    written = []
    for command in commands:
        argv = command.split()
        argv[0] = BIAX
        argv[argv.index("--model") + 1] = str(FOLDER)
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              env=QUIET)
        assert done.returncode == 0, done.stderr
        written.append((tmp_path / argv[argv.index("--out") + 1]).read_bytes())
    assert len(written[0]) > 100 and written[0] != written[1]
    done = subprocess.run([BIAX, "generate", "--model", str(FOLDER), "--style", "jazz",
                           "--out", "out/x.mid"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=QUIET)
    assert done.returncode == 2 and all(name in done.stderr for name in STYLES)


@pytest.mark.slow
def test_the_cards_held_out_command_scores_a_file_of_any_name(tmp_path):
    found = re.search(r"^    (biax evaluate --model saved_models/styles --data FILE\.json "
                      r"--split test --style \w+)$", card(), re.M)
    assert found, "the card shows no command for a held-out split"
    piece = [[48, 60, 64, 67], [48, 60, 64, 67], [43, 59, 62, 67], [48, 60, 64, 72]] * 3
    (tmp_path / "FILE.json").write_text(json.dumps({"train": [piece], "test": [piece, piece[4:]]}))
    argv = found.group(1).split()
    argv[0] = BIAX
    argv[argv.index("--model") + 1] = str(FOLDER)
    done = subprocess.run(argv + ["--json"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=QUIET)
    assert done.returncode == 0, done.stderr
    scores = json.loads(done.stdout)
    assert scores["pieces"] == 2 and scores["split"] == "test"
    assert scores["style"] == {"piano_midi_de": 1.0}


@pytest.mark.slow
def test_the_readmes_blend_command_composes(tmp_path):
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"^\.venv/bin/(biax generate --model saved_models/styles --style \S+=.*)$",
                      readme, re.M)
    assert found, "the README shows no blend command"
    argv = found.group(1).split()
    argv[0] = BIAX
    argv[argv.index("--model") + 1] = str(FOLDER)
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=QUIET)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / argv[argv.index("--out") + 1]).stat().st_size > 100


def test_the_shipped_piano_model_is_the_staged_fine_tune_in_its_piano_style():
    """saved_models/piano_midi_de is training/stages/styles-piano/best.keras fixed in the
    piano style (`benchmarks/ship.py ... --style piano_midi_de`), as BENCHMARKS.md says."""
    import numpy as np

    from biax_keras.generation import styles

    staged = biax_keras.load_model(ROOT / "training" / "stages" / "styles-piano" / "best.keras")
    shipped = biax_keras.load_model(ROOT / "saved_models" / "piano_midi_de")
    fixed = styles.in_one_style(staged, "piano_midi_de")
    assert shipped.config.styles is None
    assert len(fixed.get_weights()) == len(shipped.get_weights())
    for a, b in zip(fixed.get_weights(), shipped.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_ship_reads_a_staged_folder_by_its_stretches(tmp_path):
    from benchmarks import ship
    from biax_keras.train import runs

    assert ship.staged_stretches(tmp_path) == []  # a run folder: no best.keras here
    (tmp_path / "best.keras").write_bytes(b"")
    for number, times in ((1, "0,10.5\n1,20\n"), (2, "0,30\n"), (10, "0,1\n")):
        (tmp_path / f"stretch-{number}-config.json").write_text("{}")
        (tmp_path / f"stretch-{number}-epoch_times.csv").write_text("epoch,seconds\n" + times)
    (tmp_path / "stretch-x-config.json").write_text("{}")
    assert ship.staged_stretches(tmp_path) == [1, 2, 10]
    assert ship.stretch_seconds(tmp_path, [1, 2, 10], runs) == 61.5
    (tmp_path / "stretch-2-epoch_times.csv").unlink()
    assert ship.stretch_seconds(tmp_path, [1, 2, 10], runs) is None
