"""biax render: MIDI to WAV (a soundfont piano) and labelled piano-roll PNG; clear errors."""

import json
import shutil
import wave

import numpy as np
import pytest
from conftest import PHRASE

from biax_keras.app import cli
from biax_keras.app import render as render_command
from biax_keras.errors import UserError
from biax_keras.music import audio, pictures

C4 = 60
needs_soundfont_synth = pytest.mark.skipif(
    not audio.soundfont_synth_available(), reason="the midirenderer wheel is not installed")


def spectrum_shares(samples, rate, fundamental):
    """Share of a sound's energy near `fundamental` and above 1.5 kHz."""
    mono = np.asarray(samples, np.float64).reshape(len(samples), -1).mean(axis=1)
    power = np.abs(np.fft.rfft(mono)) ** 2
    freq = np.fft.rfftfreq(len(mono), 1 / rate)
    near = np.abs(freq - fundamental) < 0.03 * fundamental
    return power[near].sum() / power.sum(), power[freq > 1500].sum() / power.sum()


def share_near(samples, rate, frequency):
    return spectrum_shares(samples, rate, frequency)[0]


# ----------------------------------------------------------------------------
# Sound
# ----------------------------------------------------------------------------


@needs_soundfont_synth
def test_a_soundfont_piano_is_not_a_sine(write_midi):
    midi = write_midi("c4.mid", notes=[(C4, 0, 4)])  # one C4 for 2 s
    piano, rate, used = audio.synthesize(midi)
    assert used == "soundfont" and rate == 48000 and piano.shape[1] == 2
    assert np.sqrt(np.mean(piano ** 2)) > 0.02  # well above silence
    assert np.max(np.abs(piano)) == pytest.approx(audio.PEAK, rel=1e-3)
    # The note's own pitch and its overtones (a piano's second is strong),
    # nothing an octave below.
    assert share_near(piano, rate, 261.6) > 0.1
    assert share_near(piano, rate, 2 * 261.6) + share_near(piano, rate, 3 * 261.6) > 0.1
    assert share_near(piano, rate, 261.6 / 2) < 0.01
    near, high = spectrum_shares(piano, rate, 261.6)
    sine, sine_rate, _ = audio.synthesize(midi, synth="sine")
    sine_near, sine_high = spectrum_shares(sine, sine_rate, 261.6)
    # A sine puts nearly all its energy on the fundamental; a piano spreads
    # it over its overtones.
    assert sine_near > 0.95 and sine_high < 1e-4
    assert near < 0.8 and high > 100 * sine_high


@needs_soundfont_synth
def test_notes_ring_out_and_the_audio_fades_to_silence(write_midi, tmp_path):
    path = write_midi("chord.mid", [(60, 0, 2), (64, 0, 2), (67, 0, 2)])  # ends at 1 s
    audio.render_wav(path, tmp_path / "chord.wav")
    samples, rate = audio.read_wav(str(tmp_path / "chord.wav"))
    assert len(samples) / rate == pytest.approx(1.0 + audio.RELEASE_SECONDS, abs=0.05)
    after = np.abs(samples[int(1.02 * rate):int(1.15 * rate)])
    assert after.max() > 0.01  # the piano's release, after the last note-off
    assert np.abs(samples[-int(0.005 * rate):]).max() < 1e-3  # no click at the end


def test_render_wav_with_the_bundled_soundfont(write_midi, tmp_path):
    midi = write_midi("phrase.mid")  # 4 quarter notes at 120 qpm: 2 s
    result = render_command.render([midi], to=("wav", "png"))
    assert result["synth"] == "soundfont" and result["skipped"] == []
    entry = result["written"][0]
    assert entry == {"midi": str(midi), "wav": str(tmp_path / "phrase.wav"),
                     "png": str(tmp_path / "phrase.png")}
    with wave.open(entry["wav"]) as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (2, 2, 48000)
        seconds = f.getnframes() / f.getframerate()
    samples, rate = audio.read_wav(entry["wav"])
    assert 2.0 <= seconds <= 4.0
    assert np.sqrt(np.mean(samples[: rate * 2] ** 2)) > 0.02
    assert not list(tmp_path.glob(".*.tmp"))


def test_sine_waves_when_asked(write_midi, tmp_path):
    midi = write_midi("phrase.mid")
    result = render_command.render([midi], synth="sine")
    assert result["synth"] == "sine"
    with wave.open(result["written"][0]["wav"]) as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (1, 2, 44100)
        samples = np.frombuffer(f.readframes(f.getnframes()), "<i2")
    assert np.abs(samples[: 44100 * 2]).max() > 1000


def test_without_a_soundfont_synthesizer_it_says_sine_waves_aloud(write_midi, monkeypatch, caplog):
    monkeypatch.setattr(audio, "soundfont_synth_available", lambda: False)
    monkeypatch.setattr(audio, "fluidsynth_available", lambda: False)
    midi = write_midi("phrase.mid", notes=PHRASE[:2])
    with caplog.at_level("WARNING"):
        result = render_command.render([midi])
    assert result["synth"] == "sine" and "SINE WAVES" in caplog.text
    assert "pip install midirenderer" in caplog.text


@needs_soundfont_synth
def test_a_soundfont_of_ones_own(write_midi, tmp_path, monkeypatch, capsys):
    own = tmp_path / "my piano.sf2"
    shutil.copy(audio.bundled_soundfont(), own)
    midi = write_midi("phrase.mid", notes=PHRASE[:2])
    assert cli.main(["render", str(midi), "--soundfont", str(own), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["synth"] == "soundfont"
    monkeypatch.setenv(audio.SOUNDFONT_ENV, str(tmp_path / "missing.sf2"))
    assert cli.main(["render", str(midi)]) == 2
    assert "missing.sf2 does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("synth", ["soundfont", "fluidsynth"])
def test_a_file_that_is_not_a_soundfont_is_refused(synth, write_midi, tmp_path, capsys):
    if synth == "soundfont" and not audio.soundfont_synth_available():
        pytest.skip("the midirenderer wheel is not installed")
    if synth == "fluidsynth" and not audio.fluidsynth_available():
        pytest.skip("FluidSynth is not installed")
    fake = tmp_path / "fake.sf2"
    fake.write_bytes(b"RIFF\0\0\0\0WAVEnot a soundfont")
    midi = write_midi("phrase.mid")
    code = cli.main(["render", str(midi), "--synth", synth, "--soundfont", str(fake)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is not a SoundFont 2 (.sf2) file" in err[0]
    assert not (tmp_path / "phrase.wav").exists()


def test_fluidsynth_asked_for_and_missing_says_how_to_install(write_midi, tmp_path, capsys):
    if audio.fluidsynth_available():
        pytest.skip("FluidSynth is installed here")
    midi = write_midi("phrase.mid")
    code = cli.main(["render", str(midi), "--synth", "fluidsynth"])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'biax_keras[audio]'" in err
    assert not (tmp_path / "phrase.wav").exists()


# ----------------------------------------------------------------------------
# Pictures
# ----------------------------------------------------------------------------


def test_panel_pixels_tell_struck_from_held():
    roll = np.zeros((4, 128, 2), np.uint8)
    roll[0:3, C4] = [1, 0]
    roll[0, C4, 1] = 1  # struck at step 0, held to step 2
    roll[2:4, 64] = [1, 1]  # struck at 2, struck again at 3
    pixels = pictures._panel_pixels(roll.astype(np.float32), 0, 48, 71)
    row = {pitch: 71 - pitch for pitch in range(48, 72)}
    assert pixels.shape == (24, 4, 3)
    np.testing.assert_allclose(pixels[row[C4]], [pictures._STRUCK, pictures._HELD, pictures._HELD,
                                                 pictures._WHITE_ROW])
    np.testing.assert_allclose(pixels[row[64]], [pictures._WHITE_ROW, pictures._WHITE_ROW,
                                                 pictures._STRUCK, pictures._STRUCK])
    np.testing.assert_allclose(pixels[row[61], 0], pictures._BLACK_ROW)  # C#4 is a black key
    # A play-only roll: a note that starts is struck.
    play_only = roll.copy()
    play_only[..., 1] = 0
    np.testing.assert_allclose(pictures._panel_pixels(play_only.astype(np.float32), 0, 48, 71)[row[C4], :2],
                               [pictures._STRUCK, pictures._HELD])
    # Probabilities are shades: 0 leaves the background, 1 is the full shade.
    probabilities = np.zeros((2, 128), np.float32)
    probabilities[1, C4] = 1.0
    shades = pictures._panel_pixels(probabilities, 0, 48, 71)
    np.testing.assert_allclose(shades[row[C4]], [pictures._WHITE_ROW, pictures._SHADE])


def test_roll_image_layout_puts_notes_where_the_axes_say():
    roll = np.zeros((32, 128, 2), np.float32)
    roll[0:8, C4] = [1, 0]
    roll[0, C4, 1] = 1
    picture = pictures.roll_image(roll, titles=["piece"])
    low, high = 48, 71  # C4 widened to whole octaves, at least two
    plot_width, panel_height = 32 * pictures._PX_PER_STEP, 24 * pictures._PX_PER_PITCH
    plot_width, panel_height = max(plot_width, pictures._PLOT_WIDTH[0]), max(panel_height, pictures._PANEL_HEIGHT[0])
    left = pictures._LEFT + pictures._KEYBOARD
    assert picture.dtype == np.uint8 and picture.shape == (
        pictures._TOP + panel_height + pictures._BOTTOM, left + plot_width + pictures._RIGHT, 3)

    def at(step, pitch):
        x = int(left + (step + 0.5) * plot_width / 32)
        y = int(pictures._TOP + (high - pitch + 0.5) * panel_height / (high - low + 1))
        return picture[y, x] / 255.0

    np.testing.assert_allclose(at(0, C4), pictures._STRUCK, atol=0.03)
    np.testing.assert_allclose(at(4, C4), pictures._HELD, atol=0.03)
    np.testing.assert_allclose(at(12, C4), pictures._WHITE_ROW, atol=0.03)
    # A bar line at step 16 (bar 2), none at step 8.
    y = int(pictures._TOP + (high - 70 + 0.5) * panel_height / 24)
    bar_x, mid_x = int(left + 16 * plot_width / 32), int(left + 8.5 * plot_width / 32)
    assert picture[y, bar_x - 1:bar_x + 2].min() < 160 and picture[y, mid_x].min() > 230
    # The keyboard strip: a black key (C#4) and a white key (C4).
    strip_x = pictures._LEFT + pictures._KEYBOARD // 2
    assert at_row(picture, strip_x, 61, high, panel_height).max() < 60
    assert at_row(picture, strip_x, 60, high, panel_height).min() > 200


def at_row(picture, x, pitch, high, panel_height):
    return picture[int(pictures._TOP + (high - pitch + 0.5) * panel_height / 24), x]


def test_roll_image_size_stays_sensible_for_any_length():
    short = pictures.roll_image(np.zeros((4, 78), np.float32))
    long = pictures.roll_image(np.zeros((20000, 128, 2), np.float32))
    for picture in (short, long):
        assert 400 <= picture.shape[1] <= 2000 and 200 <= picture.shape[0] <= 600
    two = pictures.roll_image(np.zeros((16, 78, 2)), np.zeros((8, 78)), beats=[None, None])
    assert two.shape[0] > short.shape[0] + pictures._PANEL_HEIGHT[0]


def test_render_png_and_compare(write_midi, tmp_path, capsys):
    a = write_midi("a.mid")
    b = write_midi("b.mid", notes=PHRASE[:2])
    result = render_command.render([a], to=("png",))
    from matplotlib import image

    single = image.imread(result["written"][0]["png"])
    assert single.shape[2] in (3, 4) and single.shape[1] >= 400
    code = cli.main(["render", str(a), str(b), "--compare", "--out-dir", str(tmp_path / "pics")])
    assert code == 0
    out = capsys.readouterr().out.strip()
    compared = tmp_path / "pics" / "a_vs_b.png"
    assert out == f"wrote {compared}"
    assert image.imread(compared).shape[0] > 2 * single.shape[0] - 100


@pytest.mark.parametrize("argv, message", [
    (["render", "{tmp}/a.mid", "--compare"], "needs two or more MIDI files"),
    (["render", "{tmp}/a.mid", "{tmp}/empty_folder", "--compare"], "is a folder"),
    (["render", "{tmp}/a.mid", "{tmp}/bad.mid", "--compare"], "cannot compare"),
    (["render", "{tmp}/a.mid", "{tmp}/a.mid", "--compare", "--to", "wav"], "leave out --to"),
])
def test_compare_errors(argv, message, write_midi, tmp_path, capsys):
    write_midi("a.mid")
    (tmp_path / "empty_folder").mkdir()
    (tmp_path / "bad.mid").write_bytes(b"not midi at all")
    code = cli.main([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err


# ----------------------------------------------------------------------------
# Batches and bad input
# ----------------------------------------------------------------------------


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


def test_unknown_format_is_a_user_error(write_midi):
    with pytest.raises(UserError, match="--to must be one of wav, png"):
        render_command.render([write_midi("a.mid")], to=("mp3",))
