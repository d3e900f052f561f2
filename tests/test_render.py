"""biax render: MIDI to WAV and piano-roll PNG; bad files skipped; clear errors."""

import json
import wave

import numpy as np
import pytest

from biax_keras import cli, render
from biax_keras.errors import UserError

from conftest import PHRASE


def test_piano_roll_picture_known_values():
    roll = np.zeros((4, 128, 2), np.uint8)
    roll[0:3, 60] = [1, 0]
    roll[0, 60, 1] = 1  # struck at step 0, held to step 2
    roll[2:4, 64] = [1, 1]  # struck at 2, struck again at 3
    picture = render.roll_picture(roll, scale=1, margin=1)
    # Pitches 59..65, the highest in the top row; 4 steps.
    assert picture.shape == (7, 4)
    row = {pitch: 65 - pitch for pitch in range(59, 66)}
    np.testing.assert_allclose(picture[row[60]], [1.0, 0.55, 0.55, 0.0])
    np.testing.assert_allclose(picture[row[64]], [0.0, 0.0, 1.0, 1.0])
    assert picture[row[59]].sum() == 0 and picture[row[62]].sum() == 0
    assert render.roll_picture(roll, scale=3, margin=1).shape == (21, 12)


def test_render_wav_and_png_with_sine_waves(write_midi, tmp_path):
    midi = write_midi("phrase.mid")  # 4 quarter notes at 120 qpm: 2 s
    result = render.render([midi], to=("wav", "png"), synth="sine")
    assert result["synth"] == "sine" and result["skipped"] == []
    entry = result["written"][0]
    assert entry == {"midi": str(midi), "wav": str(tmp_path / "phrase.wav"),
                     "png": str(tmp_path / "phrase.png")}
    with wave.open(entry["wav"]) as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (1, 2, 44100)
        seconds = f.getnframes() / f.getframerate()
        samples = np.frombuffer(f.readframes(f.getnframes()), "<i2")
    assert 2.0 <= seconds <= 3.5
    assert np.abs(samples[: 44100 * 2]).max() > 1000  # sound while the notes play
    from matplotlib import image

    picture = image.imread(entry["png"])
    # Pitches 48..72 with 2 semitones of margin, 16 sixteenths, 3 pixels each.
    assert picture.shape[:2] == ((72 - 48 + 1 + 4) * 3, 16 * 3)
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_folder_with_bad_files_renders_the_good_ones(broken_midi_folder, tmp_path, capsys):
    folder, good, bad = broken_midi_folder
    out = tmp_path / "rendered"
    code = cli.main(["render", str(folder), "--to", "png", "--out-dir", str(out), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    rendered = {e["midi"][len(str(folder)) + 1:] for e in report["written"]}
    skipped = {s["path"][len(str(folder)) + 1:]: s["reason"] for s in report["skipped"]}
    assert good <= rendered
    # Every pitch is in range for a picture of all 128: only that one renders.
    assert set(bad) - {"out_of_range.mid"} == set(skipped)
    assert rendered.isdisjoint(skipped) and len(rendered) + len(skipped) == len(
        list(folder.rglob("*.mid*")) + list(folder.rglob("*.MID")))
    assert (out / "sub" / "GOOD2.png").is_file()  # the folder's layout is kept
    assert report["synth"] is None  # no WAV asked for


@pytest.mark.parametrize("argv, message", [
    (["render", "{tmp}/missing.mid"], "does not exist"),
    (["render", "{tmp}/empty_folder"], "no MIDI files"),
    (["render", "{tmp}/bad.mid", "--to", "png"], "none of the 1 MIDI file(s) could be rendered"),
    (["render", "{tmp}/bad.mid", "--out-dir", "{tmp}/bad.mid"], "is a file, not a folder"),
])
def test_render_errors_are_one_line_and_exit_2(argv, message, tmp_path, capsys):
    (tmp_path / "empty_folder").mkdir()
    (tmp_path / "bad.mid").write_bytes(b"not midi at all")
    code = cli.main([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0] and err[0].startswith("biax render")


def test_fluidsynth_asked_for_and_missing_says_how_to_install(write_midi, tmp_path, capsys):
    if render.fluidsynth_available():
        pytest.skip("FluidSynth is installed here")
    midi = write_midi("phrase.mid")
    code = cli.main(["render", str(midi), "--synth", "fluidsynth"])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'biax_keras[audio]'" in err
    assert not (tmp_path / "phrase.wav").exists()


def test_auto_falls_back_to_sine_waves_and_says_so(write_midi, caplog):
    if render.fluidsynth_available():
        pytest.skip("FluidSynth is installed here")
    midi = write_midi("phrase.mid", notes=PHRASE[:2])
    with caplog.at_level("WARNING"):
        result = render.render([midi])
    assert result["synth"] == "sine" and "FluidSynth is not installed" in caplog.text


def test_unknown_format_is_a_user_error(write_midi):
    with pytest.raises(UserError, match="--to must be one of wav, png"):
        render.render([write_midi("a.mid")], to=("mp3",))
