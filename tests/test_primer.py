"""Primers: their tempo and meter are kept, the new steps continue the meter,
only their opening can be taken, and the continuation can be written alone."""

import json

import note_seq
import numpy as np
import pytest

import biax_keras
from biax_keras.app import cli
from biax_keras.errors import UserError
from biax_keras.music import representation
from biax_keras.music.primer import Primer, read_primer
from biax_keras.nn.model import BiaxialConfig, build_model

NOTES = 20
LOWEST = 48
CONFIG = BiaxialConfig(time_units=(16, 12), note_units=(10, 8), lowest_pitch=LOWEST,
                       num_notes=NOTES)
# 90 quarter notes per minute, in microseconds per quarter note (MIDI's unit).
QPM = 90.0
TEMPO_90 = 666_667
# Three bars of 3/4 (9 quarter notes = 36 steps), a note on every beat.
WALTZ = [(60 + (beat % 3) * 3, beat, beat + 1) for beat in range(9)] + [(48, 0, 9)]
WALTZ_STEPS = 36


@pytest.fixture(scope="module")
def model():
    model = build_model(CONFIG, compile=False)
    rng = np.random.default_rng(5)
    for variable in model.weights:
        variable.assign(rng.normal(0.0, 1.0, variable.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    model.save(folder / "model.keras")
    return folder


@pytest.fixture
def waltz(write_midi):
    return write_midi("waltz.mid", WALTZ, tempo=TEMPO_90, time_signature=(3, 4))


def _generate(saved, out, *flags):
    from biax_keras.app.cli import main

    code = main(["generate", "--model", str(saved), "--out", str(out), "--json"] + list(flags))
    assert code == 0
    return out


def test_read_primer_keeps_tempo_and_meter(waltz):
    primer = read_primer(str(waltz), CONFIG)
    assert primer.roll.shape == (WALTZ_STEPS, NOTES, 2)
    assert primer.qpm == pytest.approx(QPM, rel=1e-3)
    assert primer.time_signature == (3, 4)
    np.testing.assert_array_equal(primer.beat, np.arange(WALTZ_STEPS) % 12)


def test_read_primer_takes_only_the_opening(waltz):
    assert len(read_primer(str(waltz), CONFIG, steps=8).roll) == 8
    # 2 s at 90 qpm are 3 quarter notes: 12 steps.
    opening = read_primer(str(waltz), CONFIG, seconds=2.0)
    whole = read_primer(str(waltz), CONFIG)
    np.testing.assert_array_equal(opening.roll, whole.roll[:12])
    np.testing.assert_array_equal(opening.beat, whole.beat[:12])
    assert opening.steps_in_file == WALTZ_STEPS
    with pytest.raises(UserError, match="not both"):
        read_primer(str(waltz), CONFIG, steps=8, seconds=2.0)


def test_new_steps_continue_the_primers_meter(model, waltz):
    # At a tiny temperature each note plays exactly when the model's P > 0.5,
    # so the piece must be what the model predicts with the 3/4 bar positions
    # continued: 36 primer steps, then positions 0, 1, ... 11, 0, ...
    primer = read_primer(str(waltz), CONFIG, steps=10)
    piece = biax_keras.generate(model, 20, seed=2, temperature=1e-4, primer=primer)
    beat = np.concatenate([primer.beat, (primer.beat[-1] + 1 + np.arange(20)) % 12])
    previous = np.concatenate([np.zeros_like(piece[:1]), piece[:-1]])
    p = np.asarray(model({"roll": previous[None].astype(np.float32), "beat": beat[None],
                          "target": piece[None].astype(np.float32)}, training=False))[0]
    new, p = piece[10:, :, 0], p[10:, :, 0]
    assert ((new == (p > 0.5)) | (np.abs(p - 0.5) < 1e-3)).all()
    # The meter matters: continued as 4/4, the same seed composes another piece.
    in_four = biax_keras.generate(model, 20, seed=2, temperature=1e-4, primer=primer,
                                  time_signature=(4, 4))
    assert not np.array_equal(in_four, piece)


def test_biax_generate_writes_the_primers_tempo_and_meter(saved, waltz, tmp_path, capsys):
    out = _generate(saved, tmp_path / "out.mid", "--primer", str(waltz), "--steps", "24")
    report = json.loads(capsys.readouterr().out)
    sequence = note_seq.midi_file_to_note_sequence(str(out))
    assert [round(t.qpm, 3) for t in sequence.tempos] == [pytest.approx(QPM, rel=1e-3)]
    assert [(t.numerator, t.denominator) for t in sequence.time_signatures] == [(3, 4)]
    assert report["bpm"] == pytest.approx(QPM, rel=1e-3) and report["time_signature"] == [3, 4]
    assert report["primer_steps"] == WALTZ_STEPS and report["steps"] == 24
    assert report["seconds"] == pytest.approx((WALTZ_STEPS + 24) * 60 / QPM / 4, rel=1e-3)
    # The primer is written as it was: the same notes at the same times.
    original = note_seq.midi_file_to_note_sequence(str(waltz))
    first = sorted((n.pitch, round(n.start_time, 3)) for n in original.notes)
    written = sorted((n.pitch, round(n.start_time, 3)) for n in sequence.notes
                     if n.start_time < 9 * 60 / QPM - 1e-6)
    assert first == written
    # --bpm still sets the tempo when given.
    _generate(saved, tmp_path / "fast.mid", "--primer", str(waltz), "--steps", "24",
              "--bpm", "150")
    assert json.loads(capsys.readouterr().out)["bpm"] == 150


def test_biax_generate_primer_opening_and_only_new(saved, waltz, tmp_path, capsys):
    _generate(saved, tmp_path / "a.mid", "--primer", str(waltz), "--primer-steps", "8",
              "--steps", "16")
    assert json.loads(capsys.readouterr().out)["primer_steps"] == 8
    _generate(saved, tmp_path / "b.mid", "--primer", str(waltz), "--primer-seconds", "2",
              "--steps", "16", "--seed", "4")
    whole = json.loads(capsys.readouterr().out)
    assert whole["primer_steps"] == 12

    _generate(saved, tmp_path / "c.mid", "--primer", str(waltz), "--primer-seconds", "2",
              "--steps", "16", "--seed", "4", "--only-new")
    report = json.loads(capsys.readouterr().out)
    assert report["only_new"] and report["seconds"] == pytest.approx(16 * 60 / QPM / 4, rel=1e-3)
    expected = biax_keras.generate(biax_keras.load_model(saved), 16, seed=4,
                                   primer=read_primer(str(waltz), CONFIG, seconds=2.0))[12:]
    new, _ = representation.midi_to_roll(str(tmp_path / "c.mid"), 4, LOWEST, NOTES)
    # MIDI keeps what sounds: trailing silence is not written.
    np.testing.assert_array_equal(new[..., 0], expected[:len(new), :, 0])
    assert not expected[len(new):, :, 0].any()
    full, _ = representation.midi_to_roll(str(tmp_path / "b.mid"), 4, LOWEST, NOTES)
    np.testing.assert_array_equal(full[12:, :, 0], new[..., 0][:len(full) - 12])


def test_only_new_keeps_the_bar_lines_where_the_model_composed_them(saved, waltz, tmp_path,
                                                                  capsys):
    # 7 steps of a 12-step bar: the continuation starts 5 steps before a bar line,
    # so the file opens with a pickup bar of 5 16th notes.
    out = _generate(saved, tmp_path / "w.mid", "--primer", str(waltz), "--primer-steps", "7",
                    "--steps", "40", "--seed", "4", "--only-new")
    capsys.readouterr()
    sequence = note_seq.midi_file_to_note_sequence(str(out))
    step = 60 / QPM / 4
    assert [(t.numerator, t.denominator, round(t.time / step)) for t in sequence.time_signatures] \
        == [(5, 16, 0), (3, 4, 5)]
    _, beat = representation.midi_to_roll(str(out), 4, LOWEST, NOTES)
    assert np.flatnonzero(beat == 0)[:2].tolist() == [0, 5]
    expected = biax_keras.generate(biax_keras.load_model(saved), 40, seed=4,
                                   primer=read_primer(str(waltz), CONFIG, steps=7))
    new, _ = representation.midi_to_roll(str(out), 4, LOWEST, NOTES)
    np.testing.assert_array_equal(new[..., 0], expected[7:7 + len(new), :, 0])


def test_a_silent_opening_is_called_a_rest(write_midi):
    rest = write_midi("rest.mid", [(60, 1, 2)])  # a quarter's rest, then a note
    with pytest.raises(UserError, match="is silent: a rest before its first note; keep more"):
        read_primer(str(rest), CONFIG, seconds=0.1)


def test_asking_for_more_primer_than_there_is_says_so(waltz, caplog):
    with caplog.at_level("WARNING"):
        primer = read_primer(str(waltz), CONFIG, seconds=1000)
    assert len(primer.roll) == WALTZ_STEPS
    assert (f"primer {waltz} is 6.0 s ({WALTZ_STEPS} steps) long, shorter than --primer-seconds "
            f"1000: all of it is used") in caplog.text


@pytest.mark.parametrize("flags, word", [
    (["--primer-steps", "4"], "go with --primer"),
    (["--only-new"], "go with --primer"),
    (["--primer", "P", "--primer-steps", "4", "--primer-seconds", "1"], "not allowed"),
    (["--primer", "P", "--primer-seconds", "0"], "positive"),
])
def test_primer_flags_misused_are_one_line_exit_2(saved, waltz, tmp_path, capsys, flags, word):
    flags = [str(waltz) if f == "P" else f for f in flags]
    try:
        code = cli.main(["generate", "--model", str(saved), "--out", str(tmp_path / "x.mid")]
                        + flags)
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and word in lines[0], captured.err
    assert not (tmp_path / "x.mid").exists()


def test_primer_object_is_accepted_as_a_primer(model):
    roll = np.zeros((5, NOTES, 2), np.uint8)
    roll[:, 3, 0] = 1
    roll[0, 3, 1] = 1
    primer = Primer(roll, (np.arange(5) + 7).astype(np.int32), 0, 100.0, (3, 4))
    np.testing.assert_array_equal(
        biax_keras.generate(model, 8, seed=1, primer=primer),
        biax_keras.generate(model, 8, seed=1, primer=(roll, primer.beat), time_signature=(3, 4)))


# ----------------------------------------------------------------------------
# The README's primer examples, as a user types them, in fresh processes
# ----------------------------------------------------------------------------

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
THEME = [(60 + (i % 5) * 2, i * 0.5, i * 0.5 + 0.5) for i in range(40)] + [(48, 0, 20)]


def _readme_block(start, language):
    text = (ROOT / "README.md").read_text()
    at = text.index(start)
    begin = text.rindex(f"```{language}\n", 0, at) + len(f"```{language}\n")
    return text[begin:text.index("```", at)]


@pytest.mark.slow
def test_readme_primer_examples(tmp_path, write_midi):
    import shlex
    import subprocess
    import sys

    (tmp_path / "saved_models").symlink_to(ROOT / "saved_models")
    (tmp_path / "theme.mid").write_bytes((write_midi("t.mid", THEME, tempo=TEMPO_90)).read_bytes())
    command = _readme_block("--primer-seconds 8", "sh").replace("\\\n", " ")
    argv = shlex.split(command)
    assert argv[0] == "biax"
    done = subprocess.run([sys.executable, "-m", "biax_keras.app.cli"] + argv[1:] + ["--json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    # 8 s of the theme at 90 qpm are 12 quarter notes; 30 s new at 90 qpm are 180 steps.
    assert report["primer_steps"] == 48 and report["steps"] == 180 and report["only_new"]
    sequence = note_seq.midi_file_to_note_sequence(str(tmp_path / "out" / "continuation.mid"))
    assert sequence.tempos[0].qpm == pytest.approx(QPM, rel=1e-3)
    assert sequence.total_time <= 30.001  # the continuation alone, without the 8 s primer

    snippet = _readme_block("SamplingControls(temperature=0.9", "python")
    prelude = ("import biax_keras\nfrom biax_keras import representation\n"
               "model = biax_keras.load_model('saved_models/bach')\n")
    done = subprocess.run([sys.executable, "-c", prelude + snippet], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    written = note_seq.midi_file_to_note_sequence(str(tmp_path / "out.mid"))
    assert written.tempos[0].qpm == pytest.approx(QPM, rel=1e-3)
    assert written.total_time > 8


@pytest.mark.slow
def test_readme_serving_example(tmp_path):
    """`biax export` of the shipped Bach model, then the README's serving code in a
    process that never imports biax_keras."""
    import subprocess
    import sys

    assert cli.main(["export", "--model", str(ROOT / "saved_models" / "bach"), "--out",
                     str(tmp_path / "exported" / "bach")]) == 0
    snippet = _readme_block('tf.saved_model.load("exported/bach")', "python")
    check = ('\nimport sys\nassert "biax_keras" not in sys.modules\n'
             'assert tuple(roll.shape) == (1, 480, 78, 2) and roll.dtype == tf.uint8, roll.shape\n')
    done = subprocess.run([sys.executable, "-c", snippet + check], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
