"""The compiled sampler: step-by-step decoding equals the teacher-forced pass,
seeds, batches, primers, controls, bad input, `load_model`, `biax generate`.

Every model here is tiny, so XLA compiles each shape in about a second; the
model fixtures are shared by the whole module so compiled functions are reused.
"""

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import biax_keras
from biax_keras.app import cli
from biax_keras.errors import UserError
from biax_keras.generation.sampling import (
    Sampler,
    SamplingControls,
    generate,
    generate_batch,
    score,
    steps_for_seconds,
)
from biax_keras.music import representation
from biax_keras.music.primer import read_primer
from biax_keras.nn.model import BiaxialConfig, build_model

NOTES = 20
LOWEST = 48
CONFIG = BiaxialConfig(time_units=(16, 12), note_units=(10, 8), lowest_pitch=LOWEST,
                       num_notes=NOTES, dropout=0.5)


def _random_weights(model, seed, scale=1.0):
    """Every weight (biases included) random, so no part of the math hides behind zeros."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.normal(0.0, scale, variable.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def model():
    return _random_weights(build_model(CONFIG, compile=False), seed=1)


def _random_roll(rng, batch, steps, notes, density=0.3):
    roll = (rng.random((batch, steps, notes, 2)) < density).astype(np.float32)
    roll[..., 1] *= roll[..., 0]
    return roll


def _model_inputs(piece, beat):
    """The Keras model's inputs for whole pieces `(B, T, N, 2)`: silence, then each step."""
    previous = np.concatenate([np.zeros_like(piece[:, :1]), piece[:, :-1]], axis=1)
    return {"roll": previous.astype(np.float32), "beat": beat.astype(np.int32),
            "target": piece.astype(np.float32)}


# ----------------------------------------------------------------------------
# The foundation: step-by-step decoding == teacher-forced forward pass
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("notes, per_iteration", [(NOTES, None), (23, 3), (9, 100)])
def test_step_by_step_probabilities_equal_teacher_forced_pass(model, notes, per_iteration):
    # Other note counts and loop shapes too: the model runs on any N, and the
    # note walk has a loop part and an unrolled remainder.
    rng = np.random.default_rng(notes)
    roll = _random_roll(rng, 2, 9, notes)
    inputs = {"roll": roll, "beat": rng.integers(0, 16, (2, 9)).astype(np.int32),
              "target": _random_roll(rng, 2, 9, notes)}
    expected = np.asarray(model(inputs, training=False))
    sampler = Sampler(model, notes_per_iteration=per_iteration)
    stepped = sampler.score(inputs["roll"], inputs["beat"], inputs["target"])
    np.testing.assert_allclose(stepped, expected, atol=1e-5, rtol=0)
    assert np.abs(expected - 0.5).max() > 0.2  # the weights do make a difference


def test_uncompiled_sampler_agrees_too(model):
    rng = np.random.default_rng(7)
    inputs = _model_inputs(_random_roll(rng, 1, 5, NOTES), np.arange(5)[None] % 16)
    expected = np.asarray(model(inputs, training=False))
    stepped = Sampler(model, jit_scope="none").score(
        inputs["roll"], inputs["beat"], inputs["target"])
    np.testing.assert_allclose(stepped, expected, atol=1e-5, rtol=0)


def _confident(probabilities, margin=1e-3):
    return np.abs(probabilities - 0.5) > margin


@pytest.mark.parametrize("with_primer", [False, True])
def test_cold_sampling_makes_the_teacher_forced_models_choices(model, with_primer):
    # At a tiny temperature each note plays exactly when the model's P > 0.5.
    # Scoring the sampled piece with model(inputs) checks the whole sampler,
    # the primer's carried state and the bar positions included.
    rng = np.random.default_rng(3)
    primer = _random_roll(rng, 1, 6, NOTES)[0].astype(np.uint8) if with_primer else None
    piece = generate(model, 12, seed=5, temperature=1e-4, primer=primer)
    start = 6 if with_primer else 0
    beat = representation.bar_positions(len(piece))
    p = np.asarray(model(_model_inputs(piece[None], beat[None]), training=False))[0]
    new, p = piece[start:], p[start:]
    play_ok = (new[..., 0] == (p[..., 0] > 0.5)) | ~_confident(p[..., 0])
    assert play_ok.all()
    articulate_ok = (new[..., 1] == (new[..., 0] & (p[..., 1] > 0.5))) | ~_confident(p[..., 1])
    assert articulate_ok.all()
    assert 0 < new[..., 0].sum() < new[..., 0].size  # neither silent nor saturated


# ----------------------------------------------------------------------------
# Sampling controls
# ----------------------------------------------------------------------------


def test_same_seed_same_piece_and_different_seeds_differ(model):
    a = generate(model, 24, seed=11)
    assert a.shape == (24, NOTES, 2) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, generate(model, 24, seed=11))
    assert not np.array_equal(a, generate(model, 24, seed=12))


def test_batch_returns_k_pieces_and_sample_0_is_the_single_piece(model):
    batch = generate_batch(model, 3, 24, seed=11)
    assert batch.shape == (3, 24, NOTES, 2)
    np.testing.assert_array_equal(batch[0], generate(model, 24, seed=11))
    assert not np.array_equal(batch[0], batch[1])


def test_lower_temperature_is_more_deterministic(model):
    def disagreement(temperature):
        a, b = (generate(model, 24, seed=s, temperature=temperature) for s in (1, 2))
        return np.mean(a[..., 0] != b[..., 0])

    assert disagreement(1e-4) < 0.01
    assert disagreement(1e-4) < disagreement(1.0)


def test_conservativity_plays_fewer_notes(model):
    loose = generate_batch(model, 2, 24, seed=4, conservativity=0.3)[..., 0].sum()
    strict = generate_batch(model, 2, 24, seed=4, conservativity=4.0)[..., 0].sum()
    assert strict < loose


def test_adaptive_conservativity_breaks_long_silences():
    # A model that almost never plays: P(play) ~ 0.2% for every note.
    quiet = _random_weights(build_model(CONFIG, compile=False), seed=2, scale=0.05)
    quiet.head.dense.bias.assign(np.array([-6.0, 0.0], np.float32))
    plain = generate(quiet, 120, seed=0)
    adaptive = generate(quiet, 120, seed=0, adaptive=True)
    assert plain[..., 0].sum() < 0.01 * plain[..., 0].size
    assert adaptive[..., 0].sum() > 3 * max(plain[..., 0].sum(), 1)
    # It starts from the requested conservativity: the first steps are alike.
    np.testing.assert_array_equal(adaptive[:1], plain[:1])


@pytest.mark.parametrize("kwargs", [{}, {"temperature": 3.0, "conservativity": 0.2},
                                    {"adaptive": True}])
def test_articulate_only_where_play(model, kwargs):
    pieces = generate_batch(model, 2, 24, seed=9, **kwargs)
    assert set(np.unique(pieces)) <= {0, 1}
    assert not (pieces[..., 1] > pieces[..., 0]).any()
    assert pieces[..., 1].sum() > 0


def test_a_play_only_model_is_fed_rolls_like_its_training_data():
    """A play-only network learned from rolls without articulation and never
    trained its articulate output: it draws none, and a primer's is hidden
    from it (the piece keeps the primer's own)."""
    config = BiaxialConfig(time_units=(16,), note_units=(10,), lowest_pitch=LOWEST,
                           num_notes=NOTES, dropout=0.0, play_only=True)
    play_only = _random_weights(build_model(config, compile=False), seed=4)
    pieces = generate_batch(play_only, 2, 24, seed=9, conservativity=0.5)
    assert pieces[..., 0].sum() > 0 and pieces[..., 1].sum() == 0
    # What it plays is what the same network plays when it is fed the
    # articulations it never learned from.
    rng = np.random.default_rng(8)
    primer = _random_roll(rng, 1, 7, NOTES, density=0.5)[0].astype(np.uint8)
    assert primer[..., 1].sum() > 0
    struck = generate(play_only, 12, seed=3, primer=primer)
    held = primer.copy()
    held[..., 1] = 0
    np.testing.assert_array_equal(struck[:7], primer)
    np.testing.assert_array_equal(struck[7:], generate(play_only, 12, seed=3, primer=held)[7:])


def test_cli_generate_counts_a_play_only_models_notes(tmp_path, capsys):
    """The note count it prints is the MIDI file's, articulated or not: a
    play-only model draws no articulations, and counting them said 0."""
    import note_seq

    config = BiaxialConfig(time_units=(16,), note_units=(10,), lowest_pitch=LOWEST,
                           num_notes=NOTES, dropout=0.0, play_only=True)
    saved = tmp_path / "play_only.keras"
    _random_weights(build_model(config, compile=False), seed=4).save(saved)
    out = tmp_path / "piece.mid"
    assert cli.main(["generate", "--model", str(saved), "--out", str(out), "--steps", "32",
                     "--seed", "9", "--conservativity", "0.5"]) == 0
    written = len(note_seq.midi_file_to_note_sequence(str(out)).notes)
    assert written > 0
    assert capsys.readouterr().out.strip().endswith(f", {written} notes")


def test_primer_is_kept_verbatim_as_the_opening(model):
    rng = np.random.default_rng(8)
    primer = _random_roll(rng, 1, 7, NOTES)[0].astype(np.uint8)
    pieces = generate_batch(model, 2, 10, seed=3, primer=primer)
    assert pieces.shape == (2, 17, NOTES, 2)
    for piece in pieces:
        np.testing.assert_array_equal(piece[:7], primer)
    # The primer conditions what follows.
    assert not np.array_equal(pieces[0, 7:], generate(model, 10, seed=3))


def test_note_count_and_batch_size_can_change_in_one_process():
    # The compiled parts are traced per note count: 20 notes, then 23, then a
    # primer 17 notes wide, then 20 again, with batch sizes 1 and 3, in one process.
    fresh = _random_weights(build_model(CONFIG, compile=False), seed=3)
    first = biax_keras.generate(fresh, 6, seed=1)
    assert first.shape == (6, NOTES, 2)
    assert biax_keras.generate(fresh, 6, seed=1, num_notes=NOTES + 3).shape == (6, NOTES + 3, 2)
    primer = np.zeros((3, NOTES - 3, 2), np.uint8)
    primer[:, 5, 0] = 1
    primer[0, 5, 1] = 1
    assert biax_keras.generate(fresh, 6, seed=1, primer=primer).shape == (9, NOTES - 3, 2)
    assert biax_keras.generate_batch(fresh, 3, 6, seed=1, num_notes=NOTES + 3).shape == (
        3, 6, NOTES + 3, 2)
    np.testing.assert_array_equal(biax_keras.generate(fresh, 6, seed=1), first)


def test_controls_travel_as_one_object(model):
    controls = SamplingControls(temperature=0.7, conservativity=1.3, adaptive=True)
    np.testing.assert_array_equal(
        generate(model, 16, seed=4, controls=controls),
        generate(model, 16, seed=4, temperature=0.7, conservativity=1.3, adaptive=True))
    assert not np.array_equal(generate(model, 16, seed=4, controls=controls),
                              generate(model, 16, seed=4))
    with pytest.raises(TypeError):
        generate(model, 16, controls=controls, temperature=2.0)
    with pytest.raises(UserError, match="adaptive"):
        SamplingControls(adaptive="yes")


def test_steps_for_seconds():
    assert steps_for_seconds(60, 120, 4) == 480
    assert steps_for_seconds(1, 90, 4) == 6
    with pytest.raises(UserError):
        steps_for_seconds(0, 120, 4)
    with pytest.raises(UserError):
        steps_for_seconds(10, -5, 4)


@pytest.mark.parametrize("kwargs, word", [
    ({"steps": 0}, "steps"), ({"steps": -3}, "steps"), ({"steps": 2.5}, "steps"),
    ({"temperature": 0.0}, "temperature"), ({"temperature": -1.0}, "temperature"),
    ({"temperature": math.nan}, "temperature"), ({"conservativity": 0}, "conservativity"),
    ({"seed": 1.5}, "seed"), ({"num_samples": 0}, "num_samples"),
    ({"primer": np.zeros((4, NOTES))}, "shape"), ({"primer": np.zeros((0, NOTES, 2))}, "shape"),
    ({"primer": np.full((4, NOTES, 2), 2)}, "0 and 1"),
    ({"primer": np.stack([np.zeros((4, NOTES)), np.ones((4, NOTES))], -1)}, "articulates"),
    ({"primer": np.zeros((4, NOTES, 2)), "num_notes": NOTES + 1}, "num_notes"),
])
def test_bad_controls_raise_user_errors(model, kwargs, word):
    arguments = {"num_samples": 1, "steps": 4}
    arguments.update(kwargs)
    with pytest.raises(UserError, match=word):
        generate_batch(model, **arguments)


# ----------------------------------------------------------------------------
# Primers from MIDI
# ----------------------------------------------------------------------------


def test_read_primer_drops_and_counts_notes_outside_the_range(write_midi):
    # The range is MIDI 48..67: 30 and 90 lie outside.
    path = write_midi("p.mid", [(60, 0, 1), (64, 1, 2), (30, 0, 2), (90, 1, 2)])
    primer = read_primer(str(path), CONFIG)
    assert primer.notes_dropped == 2
    assert primer.roll.shape == (8, NOTES, 2) and primer.beat.shape == (8,)
    assert primer.roll[0, 60 - LOWEST].tolist() == [1, 1]


def test_unusable_primers_are_user_errors(write_midi, tmp_path):
    (tmp_path / "empty.mid").write_bytes(b"")
    (tmp_path / "text.mid").write_text("not music\n" * 10)
    outside = write_midi("outside.mid", [(30, 0, 1), (100, 1, 2)])
    for path, word in [(tmp_path / "empty.mid", "empty"), (tmp_path / "text.mid", "not a MIDI"),
                       (outside, "outside the model's range"), (tmp_path / "nope.mid", "does not")]:
        with pytest.raises(UserError, match=word):
            read_primer(str(path), CONFIG)


# ----------------------------------------------------------------------------
# load_model
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    """The module's model saved as `model.keras` in a run folder."""
    folder = tmp_path_factory.mktemp("run")
    model.save(folder / "model.keras")
    return folder


def test_load_model_from_file_and_run_folder(model, saved):
    for path in (saved / "model.keras", saved):
        loaded = biax_keras.load_model(path)
        assert loaded.config == CONFIG
        for a, b in zip(loaded.weights, model.weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_load_model_rejects_what_is_not_a_model(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "junk.keras").write_bytes(b"PK not really a zip")
    (tmp_path / "model.h5").write_bytes(b"")
    for path, word in [(tmp_path / "missing", "does not exist"),
                       (tmp_path / "folder", "without model.keras"),
                       (tmp_path / "junk.keras", "is not a Keras model file"),
                       (tmp_path / "model.h5", "not a model")]:
        with pytest.raises(UserError, match=word):
            biax_keras.load_model(path)


def test_package_level_generate_is_the_sampler(model):
    import inspect

    import biax_keras.compose  # noqa: F401  (no submodule shadows the function)
    import biax_keras.export  # noqa: F401
    import biax_keras.sampling  # noqa: F401

    assert inspect.isfunction(biax_keras.generate) and inspect.isfunction(biax_keras.generate_batch)
    np.testing.assert_array_equal(biax_keras.generate(model, 8, seed=2), generate(model, 8, seed=2))
    assert biax_keras.generate_batch(model, 2, 8).shape == (2, 8, NOTES, 2)


def test_score_helper_matches_model(model):
    rng = np.random.default_rng(1)
    inputs = _model_inputs(_random_roll(rng, 1, 4, NOTES), np.zeros((1, 4)))
    np.testing.assert_allclose(score(model, inputs["roll"], inputs["beat"], inputs["target"]),
                               np.asarray(model(inputs, training=False)), atol=1e-5)


# ----------------------------------------------------------------------------
# Export: a SavedModel that TensorFlow alone can use
# ----------------------------------------------------------------------------

_OUTSIDE_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    loaded = tf.saved_model.load(sys.argv[1])
    args = json.loads(sys.argv[2])
    roll = loaded.generate(
        steps=tf.constant(args["steps"]), seed=tf.constant(args["seed"], tf.int64),
        temperature=tf.constant(1.0), conservativity=tf.constant(1.0),
        adaptive=tf.constant(False), min_pitch=tf.constant(0), max_pitch=tf.constant(127),
        num_samples=tf.constant(2))["roll"]
    primer = np.load(sys.argv[3])
    primed = loaded.signatures["generate_from_primer"](
        steps=tf.constant(5), seed=tf.constant(args["seed"], tf.int64),
        temperature=tf.constant(1.0), conservativity=tf.constant(1.0),
        adaptive=tf.constant(False), min_pitch=tf.constant(0), max_pitch=tf.constant(127),
        num_samples=tf.constant(1), primer=tf.constant(primer, tf.float32),
        primer_beat=tf.range(len(primer), dtype=tf.int32))["roll"]
    probabilities = loaded.signatures["score"](
        roll=tf.zeros((1, 3, primer.shape[1], 2)), beat=tf.zeros((1, 3), tf.int32),
        target=tf.zeros((1, 3, primer.shape[1], 2)))["probabilities"]
    assert "biax_keras" not in sys.modules
    np.savez(sys.argv[4], roll=roll.numpy(), primed=primed.numpy(),
             probabilities=probabilities.numpy())
""")


@pytest.mark.slow
def test_exported_model_generates_without_the_package(model, saved, tmp_path):
    out = tmp_path / "exported"
    assert cli.main(["export", "--model", str(saved), "--out", str(out)]) == 0
    assert (out / "saved_model.pb").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch left

    primer = generate(model, 4, seed=1)
    np.save(tmp_path / "primer.npy", primer)
    done = subprocess.run(
        [sys.executable, "-c", _OUTSIDE_SCRIPT, str(out), json.dumps({"steps": 12, "seed": 21}),
         str(tmp_path / "primer.npy"), str(tmp_path / "result.npz")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = np.load(tmp_path / "result.npz")
    np.testing.assert_array_equal(result["roll"], generate_batch(model, 2, 12, seed=21))
    np.testing.assert_array_equal(result["primed"][0], generate(model, 5, seed=21, primer=primer))
    zeros = np.zeros((1, 3, NOTES, 2), np.float32)
    expected = model({"roll": zeros, "beat": np.zeros((1, 3), np.int32), "target": zeros})
    np.testing.assert_allclose(result["probabilities"], np.asarray(expected), atol=1e-5)

    # Every sampling control is an input of both generation signatures.
    import tensorflow as tf

    signatures = tf.saved_model.load(str(out)).signatures
    controls = set(SamplingControls.tensor_specs())
    assert set(signatures["generate"].structured_input_signature[1]) == (
        {"steps", "seed", "num_samples"} | controls)
    assert set(signatures["generate_from_primer"].structured_input_signature[1]) == (
        {"steps", "seed", "num_samples", "primer", "primer_beat"} | controls)

    # And through load_model, the exported model stands in for the Keras one.
    exported = biax_keras.load_model(out)
    assert exported.config == CONFIG
    np.testing.assert_array_equal(generate(exported, 12, seed=21), generate(model, 12, seed=21))

    assert cli.main(["export", "--model", str(saved), "--out", str(out)]) == 2  # exists


# ----------------------------------------------------------------------------
# biax generate
# ----------------------------------------------------------------------------


def _one_line_error(capsys, argv):
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse's errors exit from parse_args
        code = e.code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and captured.out == "", captured.err
    return lines[0]


def test_cli_generate_writes_midi(saved, tmp_path, capsys):
    out = tmp_path / "piece.mid"
    assert cli.main(["generate", "--model", str(saved), "--out", str(out), "--steps", "32",
                     "--seed", "3", "--bpm", "90", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    roll, _ = representation.midi_to_roll(str(out), 4, LOWEST, NOTES)
    expected = generate(biax_keras.load_model(saved), 32, seed=3)
    # MIDI keeps what sounds (trailing silence is not written, and a note
    # sounding without a strike after silence is read back as struck).
    np.testing.assert_array_equal(roll[..., 0], expected[: len(roll), :, 0])
    assert not expected[len(roll):, :, 0].any()
    assert report["steps"] == 32 and report["seconds"] == pytest.approx(32 * 60 / 90 / 4)
    assert report["pieces"][0]["midi"] == str(out)


def test_cli_generate_several_samples_with_a_primer(saved, tmp_path, write_midi, capsys, caplog):
    primer = write_midi("primer.mid", [(60, 0, 1), (64, 0, 1), (20, 0, 1)])  # 20: out of range
    out = tmp_path / "song.mid"
    code = cli.main(["generate", "--model", str(saved), "--out", str(out), "--seconds", "2",
                     "--primer", str(primer), "--num-samples", "2", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    # (The CLI logs to stderr; caplog sees the record whatever stream logging holds.)
    assert "1 notes of primer" in caplog.text and "dropped" in caplog.text
    report = json.loads(captured.out)
    assert [p["midi"] for p in report["pieces"]] == [str(tmp_path / "song-1.mid"),
                                                    str(tmp_path / "song-2.mid")]
    assert report["primer_steps"] == 4 and report["steps"] == 16
    assert report["primer_notes_dropped"] == 1
    assert not out.exists()


@pytest.mark.parametrize("flags, word", [
    (["--steps", "0"], "positive"), (["--seconds", "-2"], "positive"),
    (["--temperature", "0"], "positive"), (["--conservativity", "-1"], "positive"),
    (["--steps", "4", "--seconds", "2"], "not allowed"),
])
def test_cli_generate_bad_flags_are_one_line_exit_2(saved, tmp_path, capsys, flags, word):
    line = _one_line_error(capsys, ["generate", "--model", str(saved),
                                    "--out", str(tmp_path / "x.mid")] + flags)
    assert word in line
    assert list(tmp_path.iterdir()) == []


def test_cli_generate_bad_paths_are_one_line_exit_2(saved, tmp_path, write_midi, capsys):
    (tmp_path / "text.mid").write_text("lyrics, not music")
    outside = write_midi("outside.mid", [(10, 0, 1)])
    out = tmp_path / "o" / "x.mid"
    cases = [
        (["--model", str(tmp_path / "missing.keras")], "does not exist"),
        (["--model", str(tmp_path)], "without model.keras"),
        (["--model", str(saved), "--primer", str(tmp_path / "text.mid")], "not a MIDI"),
        (["--model", str(saved), "--primer", str(tmp_path / "none.mid")], "does not exist"),
        (["--model", str(saved), "--primer", str(outside)], "outside the model's range"),
    ]
    for flags, word in cases:
        assert word in _one_line_error(capsys, ["generate", "--out", str(out)] + flags)
    line = _one_line_error(capsys, ["generate", "--model", str(saved),
                                    "--out", str(tmp_path / "x.wav")])
    assert ".mid" in line
    assert not (tmp_path / "o").exists()


def test_cli_generate_wav_plays_the_soundfont_piano(saved, tmp_path, capsys):
    from biax_keras.music import audio

    if not audio.soundfont_synth_available():
        pytest.skip("the midirenderer wheel is not installed")
    assert cli.main(["generate", "--model", str(saved), "--out", str(tmp_path / "x.mid"),
                     "--steps", "16", "--wav"]) == 0
    assert "x.mid and " in capsys.readouterr().out
    import wave

    with wave.open(str(tmp_path / "x.wav")) as f:  # the soundfont synthesizer's format
        assert (f.getnchannels(), f.getframerate()) == (2, 48000)


def test_cli_generate_wav_with_a_missing_soundfont_stops_before_generating(saved, tmp_path, capsys):
    line = _one_line_error(capsys, ["generate", "--model", str(saved), "--out", str(tmp_path / "x.mid"),
                                    "--wav", "--soundfont", str(tmp_path / "piano.sf2")])
    assert "piano.sf2 does not exist" in line and "--soundfont" in line
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------
# biax benchmark generate (tiny sizes: checks the report, not the speed)
# ----------------------------------------------------------------------------


def test_benchmark_generate_reports_times(capsys):
    code = cli.main(["benchmark", "generate", "--json", "--time-units", "8", "--note-units", "6",
                     "--seconds", "1", "--repeats", "1", "--batch", "2", "--baseline-calls", "2",
                     "--baseline-histories", "1,3"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 8
    for part in ("one", "batch"):
        assert report[part]["median_s"] > 0 and report[part]["real_time_factor"] > 0
    assert report["baseline"]["speedup"] > 0
    # FLOPs of the tiny model: time axis 8 units, note axis 6, 8 steps of 78 notes.
    from benchmarks.speed.train import forward_flops_per_note_step  # found by `biax benchmark`

    from biax_keras.nn.config import BiaxialConfig
    per_sample = forward_flops_per_note_step(BiaxialConfig(time_units=(8,), note_units=(6,)))
    arithmetic = report["arithmetic"]
    assert arithmetic["gflop_per_sample"] == round(per_sample * 78 * 8 / 1e9, 2)
    assert arithmetic["matmul_gflops"] > 0
    assert arithmetic["batch_floor_s"] == pytest.approx(
        2 * per_sample * 78 * 8 / (arithmetic["matmul_gflops"] * 1e9), rel=0.05, abs=0.01)
    assert report["batch"]["gflops"] >= 0
    assert set(report["targets"]) >= {"meets_real_time_factor", "meets_batch_time_ratio"}
