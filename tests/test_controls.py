"""Sampling controls, each defined once: the pitch range they added, and how a
control reaches the flags, the checks, the studio, the sampler and the export."""

import argparse
import dataclasses
import json

import numpy as np
import pytest

import biax_keras
from biax_keras.app import cli, studio
from biax_keras.errors import UserError
from biax_keras import sampling_controls as controls_lib
from biax_keras.sampling_controls import SamplingControls, control
from biax_keras.generation.export import export_model
from biax_keras.music import representation
from biax_keras.nn.model import BiaxialConfig, build_model

LOWEST = 36
CONFIG = BiaxialConfig(time_units=(10,), note_units=(8,), lowest_pitch=LOWEST, num_notes=48)


@pytest.fixture(scope="module")
def model():
    model = build_model(CONFIG, compile=False)
    rng = np.random.default_rng(3)
    for variable in model.weights:  # random weights: many notes play
        variable.assign(rng.normal(0.0, 0.8, variable.shape).astype("float32"))
    return model


def _pitches(roll):
    return {LOWEST + n for n in np.flatnonzero(roll[..., 0].any(axis=0))}


def test_the_new_music_keeps_to_the_pitch_range(model):
    free = biax_keras.generate(model, 64, seed=4)
    assert min(_pitches(free)) < 60 and max(_pitches(free)) > 72  # the range matters here
    kept = biax_keras.generate(model, 64, seed=4, min_pitch=60, max_pitch=72)
    assert _pitches(kept) and _pitches(kept) <= set(range(60, 73))
    # The whole MIDI range is no range at all: the same piece, number for number.
    whole = biax_keras.generate(model, 64, seed=4, min_pitch=0, max_pitch=127)
    np.testing.assert_array_equal(whole, free)


def test_a_primer_keeps_its_own_notes_outside_the_range(model):
    primer = np.zeros((8, CONFIG.num_notes, 2), np.uint8)
    primer[:, 2, 0] = 1  # MIDI 38, below the range
    primer[0, 2, 1] = 1
    piece = biax_keras.generate(model, 32, seed=1, primer=primer, min_pitch=60, max_pitch=72)
    np.testing.assert_array_equal(piece[:8], primer)
    assert _pitches(piece[8:]) <= set(range(60, 73))


@pytest.mark.parametrize("values, words", [
    ({"min_pitch": 80, "max_pitch": 70}, "min_pitch (80) is above max_pitch (70)"),
    ({"min_pitch": -1}, "min_pitch must be from 0 to 127, got -1"),
    ({"max_pitch": 60.5}, "max_pitch must be a whole number"),
    ({"temperature": 0}, "temperature must be a positive number"),
    ({"adaptive": "yes"}, "adaptive must be True or False"),
])
def test_controls_out_of_range_are_refused_by_name(values, words):
    with pytest.raises(UserError, match=words.replace("(", r"\(").replace(")", r"\)")):
        SamplingControls(**values)


def test_generate_flags_come_from_the_controls(model, tmp_path, capsys):
    model.save(tmp_path / "m.keras")
    out = tmp_path / "range.mid"
    assert cli.main(["generate", "--model", str(tmp_path / "m.keras"), "--out", str(out),
                     "--steps", "48", "--seed", "2", "--min-pitch", "60", "--max-pitch", "67",
                     "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["min_pitch"] == 60 and report["max_pitch"] == 67
    roll, _ = representation.midi_to_roll(str(out), 4, 0, 128)
    assert set(np.flatnonzero(roll[..., 0].any(axis=0))) <= set(range(60, 68))
    code = cli.main(["generate", "--model", str(tmp_path / "m.keras"), "--out",
                     str(tmp_path / "x.mid"), "--min-pitch", "80", "--max-pitch", "70"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "min_pitch (80) is above max_pitch (70)" in err[0]
    with pytest.raises(SystemExit) as e:
        cli.main(["generate", "--model", str(tmp_path / "m.keras"), "--out",
                  str(tmp_path / "x.mid"), "--max-pitch", "200"])
    assert e.value.code == 2
    assert "argument --max-pitch: must be from 0 to 127, got 200" in capsys.readouterr().err


def test_a_control_is_a_field_and_its_use(monkeypatch):
    """A field added to SamplingControls reaches every place that carries the
    controls without another line: flags, checks, the studio, tensor specs."""

    @dataclasses.dataclass(frozen=True)
    class WithMore(SamplingControls):
        max_onsets: int = control(0, "the most notes struck in one step (0: no limit)",
                                  minimum=0, maximum=128, since=3)

    parser = argparse.ArgumentParser()
    WithMore.add_arguments(parser)
    args = parser.parse_args(["--max-onsets", "4", "--temperature", "0.5"])
    assert WithMore.from_arguments(args) == WithMore(max_onsets=4, temperature=0.5)
    with pytest.raises(UserError, match="max_onsets must be from 0 to 128"):
        WithMore(max_onsets=500)
    assert [c["name"] for c in WithMore.page_inputs()][-1] == "max_onsets"
    assert WithMore.from_page({"max_onsets": "3"}).max_onsets == 3
    assert "max_onsets" in WithMore.tensor_specs() and "max_onsets" not in \
        WithMore.tensor_specs(version=2)
    assert WithMore.names(version=1) == ["temperature", "conservativity", "adaptive"]


def test_the_studio_page_has_an_input_for_every_control():
    page = studio.control_inputs()
    for name in SamplingControls.names():
        assert f'id="{name}" class="control"' in page
    assert 'id="adaptive" class="control" type="checkbox"' in page
    assert 'id="min_pitch" class="control" type="number" value="0" min="0" max="127" step="1"' \
        in page


def test_an_export_of_the_first_control_set_still_composes(model, tmp_path):
    """A SavedModel exported before the pitch range existed loads and composes,
    and says so when asked for a control it does not have."""
    export_model(model, tmp_path / "v1", controls_version=1)
    export_model(model, tmp_path / "now")
    old, new = biax_keras.load_model(tmp_path / "v1"), biax_keras.load_model(tmp_path / "now")
    assert (old.controls_version, new.controls_version) == (1, controls_lib.VERSION)
    np.testing.assert_array_equal(biax_keras.generate(old, 16, seed=5),
                                  biax_keras.generate(new, 16, seed=5))
    with pytest.raises(UserError, match="exported before --min-pitch existed; export the model"):
        biax_keras.generate(old, 16, seed=5, min_pitch=60)
    kept = biax_keras.generate(new, 32, seed=5, min_pitch=60, max_pitch=72)
    np.testing.assert_array_equal(kept, biax_keras.generate(model, 32, seed=5, min_pitch=60,
                                                            max_pitch=72))
