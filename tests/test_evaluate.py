import math

import keras
import numpy as np
import pytest
from keras import ops

from biax_keras.app import evaluate
from biax_keras.nn.model import BiaxialConfig


class FixedProbabilities(keras.Model):
    """Predicts P(play)=`play` and P(articulate)=`articulate` everywhere."""

    def __init__(self, play, articulate):
        super().__init__()
        self.play, self.articulate = play, articulate
        self.config = BiaxialConfig(time_units=(4,), note_units=(4,))

    def call(self, inputs, training=None):
        target = ops.cast(inputs["target"], "float32")
        p = ops.ones_like(target[..., :1])
        return ops.concatenate([p * self.play, p * self.articulate], axis=-1)


def _roll(steps, notes, onsets):
    """A roll with notes struck at (step, note, length) triples."""
    roll = np.zeros((steps, notes, 2), np.uint8)
    for step, note, length in onsets:
        roll[step : step + length, note, 0] = 1
        roll[step, note, 1] = 1
    return roll


def test_nll_of_fixed_probabilities_matches_hand_computation():
    notes, play_p, art_p = 5, 0.25, 0.6
    a = _roll(4, notes, [(0, 1, 2), (2, 3, 2)])  # 4 sounding steps, 2 onsets
    b = _roll(3, notes, [(1, 0, 1)])  # 1 sounding step, 1 onset
    model = FixedProbabilities(play_p, art_p)
    scores = evaluate.score_pieces(model, [(a, np.zeros(4)), (b, np.zeros(3))]).as_dict()

    sounding, silent = 5, (4 + 3) * notes - 5
    play = -(sounding * math.log(play_p) + silent * math.log(1 - play_p))
    # Articulate counts only sounding notes: 3 struck, 2 held.
    articulate = -(3 * math.log(art_p) + 2 * math.log(1 - art_p))
    assert scores["steps"] == 7 and scores["pieces"] == 2
    assert scores["play_nll"] == pytest.approx(play / 7, rel=1e-5)
    assert scores["articulate_nll"] == pytest.approx(articulate / 7, rel=1e-5)
    assert scores["frame_nll"] == pytest.approx((play + articulate) / 7, rel=1e-5)


def test_play_only_scores_ignore_articulate():
    roll = _roll(4, 3, [(0, 0, 4)])
    scores = evaluate.score_pieces(
        FixedProbabilities(0.5, 0.1), [(roll, np.zeros(4))], play_only=True
    ).as_dict()
    assert scores["articulate_nll"] == 0.0
    assert scores["frame_nll"] == pytest.approx(3 * math.log(2), rel=1e-5)  # 3 notes at p=0.5, per step


def test_accuracy_on_hand_made_rolls():
    scores = evaluate.Scores()
    target = _roll(2, 4, [(0, 0, 2), (0, 1, 1)])  # sounding: (0,0) (1,0) (0,1)
    probabilities = np.zeros((2, 4, 2), np.float32)
    probabilities[0, 0, 0] = 0.9  # TP
    probabilities[1, 0, 0] = 0.4  # FN
    probabilities[0, 1, 0] = 0.7  # TP
    probabilities[1, 3, 0] = 0.8  # FP
    scores.add(target, probabilities, play_only=True)
    assert scores.as_dict()["accuracy"] == pytest.approx(2 / (2 + 1 + 1))


def test_first_step_is_predicted_from_silence():
    roll = _roll(3, 2, [(0, 0, 3)])
    previous = evaluate.previous_steps(roll)
    assert previous.shape == roll.shape
    assert not previous[0].any()
    np.testing.assert_array_equal(previous[1:], roll[:-1])


def test_padding_does_not_change_scores():
    """Pieces of different lengths scored together equal pieces scored alone."""
    from biax_keras.nn.model import build_model

    model = build_model(BiaxialConfig(time_units=(6,), note_units=(5,), num_notes=8), compile=False)
    rng = np.random.default_rng(3)
    pieces = [
        ((rng.random((n, 8, 2)) < 0.3).astype(np.uint8), rng.integers(0, 16, n))
        for n in (5, 9, 12)
    ]
    together = evaluate.score_pieces(model, pieces).as_dict()
    alone = [evaluate.score_pieces(model, [p]) for p in pieces]
    total = sum(s.play_nll + s.articulate_nll for s in alone) / sum(s.steps for s in alone)
    assert together["frame_nll"] == pytest.approx(total, rel=1e-5)
    # A budget of padded note-steps splits the batches (long pieces alone,
    # here 12 steps x 8 notes, then the two shorter ones) without changing a score.
    calls = []
    counting = lambda inputs, training: calls.append(inputs["roll"].shape) or model(
        inputs, training=training)
    bounded = evaluate.score_pieces(counting, pieces, note_steps_per_batch=9 * 8 * 2).as_dict()
    assert calls == [(1, 12, 8, 2), (2, 9, 8, 2)]
    assert bounded["frame_nll"] == pytest.approx(total, rel=1e-5)
    assert bounded["steps"] == together["steps"] == 26
    # Each piece's own score, in the order given, though batched longest first.
    total_again, each = evaluate.score_pieces(model, pieces, each=True)
    assert total_again.as_dict() == pytest.approx(together)
    assert len(each) == len(alone) == 3
    for one, by_itself in zip(each, alone):
        assert one.as_dict() == pytest.approx(by_itself.as_dict())


def test_range_fitting_counts_notes_outside():
    roll = _roll(2, 10, [(0, 0, 1), (0, 9, 2)])
    fitted, outside = evaluate._fit_range(roll, data_lowest=20, model_lowest=21, model_notes=8)
    # Data note 0 is MIDI 20 (below the model) and note 9 is MIDI 29 (above 28).
    assert outside == 2
    assert fitted.shape == (2, 8, 2) and not fitted.any()
    inside = _roll(2, 4, [(0, 2, 1)])
    fitted, outside = evaluate._fit_range(inside, data_lowest=22, model_lowest=21, model_notes=8)
    assert outside == 0 and fitted[0, 3, 0] == 1 and fitted.sum() == 2


# ---------------------------------------------------------------------------
# `biax evaluate --model --data` end to end, on a JSB-format file.

JSB_SPLITS = {
    # C major and A minor chords, voice-led, a few steps each.
    "train": [[[60, 64, 67], [60, 64, 67], [59, 62, 67], [60, 64, 67, 72]]],
    "valid": [[[57, 60, 64], [57, 60, 64], [55, 59, 62], [57, 60, 64]],
              [[48, 60, 64, 67], [47, 59, 62, 67], [48, 60, 64, 67]]],
}


@pytest.fixture(scope="module")
def jsb_file(tmp_path_factory):
    import json

    # Named like the published files, whose names state their resolution.
    path = tmp_path_factory.mktemp("jsb") / "tiny-jsb-quarter.json"
    path.write_text(json.dumps(JSB_SPLITS))
    return path


def _tiny_model_file(folder, **config):
    from biax_keras.nn.model import build_model

    keras.utils.set_random_seed(3)
    values = dict(time_units=(6,), note_units=(5,), dropout=0.0, lowest_pitch=21,
                  num_notes=88, steps_per_quarter=1, play_only=True)
    values.update(config)
    path = folder / "model.keras"
    build_model(BiaxialConfig(**values)).save(path)
    return path


def _evaluate_cli(capsys, *flags):
    import json

    from biax_keras.app import cli

    code = cli.main(["evaluate", *map(str, flags), "--json"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else None), captured.err


def test_cli_scores_a_jsb_file_and_its_export_agrees(jsb_file, tmp_path, capsys):
    from biax_keras.app import cli

    model_path = _tiny_model_file(tmp_path)
    code, result, _ = _evaluate_cli(capsys, "--model", model_path, "--data", jsb_file,
                                    "--split", "valid")
    assert code == 0
    assert result["pieces"] == 2 and result["steps"] == 7
    assert result["play_only"] and 0 < result["frame_nll"] < 88 * 2
    assert result["frame_nll"] == pytest.approx(result["play_nll"])
    assert 0.0 <= result["accuracy"] <= 1.0

    exported = tmp_path / "exported"
    assert cli.main(["export", "--model", str(model_path), "--out", str(exported), "--json"]) == 0
    capsys.readouterr()
    code, from_export, _ = _evaluate_cli(capsys, "--model", exported, "--data", jsb_file,
                                         "--split", "valid")
    assert code == 0
    assert from_export["frame_nll"] == pytest.approx(result["frame_nll"], rel=1e-5)
    assert from_export["accuracy"] == result["accuracy"]


def test_cli_per_piece_names_and_scores_every_piece(jsb_file, tmp_path, capsys):
    model_path = _tiny_model_file(tmp_path)
    code, result, _ = _evaluate_cli(capsys, "--model", model_path, "--data", jsb_file,
                                    "--split", "valid", "--per-piece")
    assert code == 0
    pieces = result["per_piece"]
    assert [p["piece"] for p in pieces] == [f"{jsb_file}:valid/0", f"{jsb_file}:valid/1"]
    assert [p["steps"] for p in pieces] == [4, 3]
    # The figure over the split is the step-weighted mean of the pieces'.
    weighted = sum(p["frame_nll"] * p["steps"] for p in pieces) / 7
    assert result["frame_nll"] == pytest.approx(weighted, rel=1e-6)
    assert pieces[0]["frame_nll"] != pytest.approx(pieces[1]["frame_nll"])
    # Without the flag the result is as before.
    code, plain, _ = _evaluate_cli(capsys, "--model", model_path, "--data", jsb_file)
    assert "per_piece" not in plain and plain["frame_nll"] == pytest.approx(result["frame_nll"])

    from biax_keras.app import cli

    assert cli.main(["evaluate", "--model", str(model_path), "--data", str(jsb_file),
                     "--per-piece"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = lines[lines.index("frame NLL   steps  accuracy  piece") + 1:]
    assert [row.split()[1] for row in rows] == ["4", "3"]
    assert rows[0].endswith(f"{jsb_file}:valid/0")
    assert float(rows[1].split()[0]) == pytest.approx(pieces[1]["frame_nll"], abs=1e-4)


def test_cli_per_piece_goes_with_model_only(tmp_path, capsys):
    code, _, err = _evaluate_cli(capsys, "--generated", tmp_path, "--reference", tmp_path,
                                 "--per-piece")
    assert code == 2 and "--per-piece go with --model" in err
    assert len(err.strip().splitlines()) == 1


def test_cli_articulating_model_on_play_only_data_is_refused(jsb_file, tmp_path, capsys):
    # The model learned articulation; data with none (every note held, never
    # struck) is input it never saw: no score, the reason and what would do.
    model_path = _tiny_model_file(tmp_path, play_only=False)
    code, result, err = _evaluate_cli(capsys, "--model", model_path, "--data", jsb_file)
    assert code == 2 and result is None
    line, = err.strip().splitlines()
    assert "no articulation" in line and "play-only model" in line


def test_cli_jsb_file_at_another_resolution_is_refused(jsb_file, tmp_path, capsys):
    # A 16th-note model on the quarter-note file: refused, not scored as 16ths.
    model_path = _tiny_model_file(tmp_path, steps_per_quarter=4)
    code, result, err = _evaluate_cli(capsys, "--model", model_path, "--data", jsb_file)
    assert code == 2 and result is None
    line, = err.strip().splitlines()
    assert "quarter notes" in line and "16th notes" in line and "mean nothing" in line
    # Stating the file's resolution is the same refusal; stating the model's is a score.
    code, _, err = _evaluate_cli(capsys, "--model", model_path, "--data", jsb_file,
                                 "--steps-per-quarter", "1")
    assert code == 2 and "quarter notes" in err


def test_cli_jsb_file_without_a_stated_resolution(jsb_file, tmp_path, capsys, caplog):
    unnamed = tmp_path / "chorales.json"
    unnamed.write_text(jsb_file.read_text())
    # A play-only model learned from this format: the file is read at the
    # model's resolution, and the note says so.
    model_path = _tiny_model_file(tmp_path)  # quarter notes
    code, result, _ = _evaluate_cli(capsys, "--model", model_path, "--data", unnamed)
    assert code == 0 and result["pieces"] == 2
    assert "does not say its time resolution: read at the model's, 1 steps" in caplog.text
    code, stated, _ = _evaluate_cli(capsys, "--model", model_path, "--data", unnamed,
                                    "--steps-per-quarter", "1")
    assert code == 0 and stated["frame_nll"] == result["frame_nll"]
    code, _, err = _evaluate_cli(capsys, "--model", model_path, "--data", unnamed,
                                 "--steps-per-quarter", "4")
    assert code == 2 and "mean nothing" in err
    # An articulated model never saw this format: it asks for the resolution.
    (tmp_path / "articulated").mkdir()
    articulated = _tiny_model_file(tmp_path / "articulated", play_only=False, steps_per_quarter=1)
    code, _, err = _evaluate_cli(capsys, "--model", articulated, "--data", unnamed)
    assert code == 2 and "--steps-per-quarter" in err and len(err.strip().splitlines()) == 1


def test_jsb_resolution_from_the_file_name():
    assert evaluate.jsb_steps_per_quarter("../jsb/jsb-chorales-quarter.json") == 1
    assert evaluate.jsb_steps_per_quarter("jsb-chorales-16th.json") == 4
    assert evaluate.jsb_steps_per_quarter("JSB Chorales.pickle") is None


def test_cli_scores_midi_files_and_folders_directly(write_midi, tmp_path, capsys):
    # An articulated 16th-note model on MIDI read at its own resolution.
    model_path = _tiny_model_file(tmp_path, play_only=False, steps_per_quarter=4)
    one = write_midi("midi/one.mid")
    write_midi("midi/sub/two.mid", [(62, 0, 1), (65, 1, 3)])
    (tmp_path / "midi" / "broken.mid").write_bytes(b"not a MIDI file")
    code, single, err = _evaluate_cli(capsys, "--model", model_path, "--data", one)
    assert code == 0, err
    assert single["pieces"] == 1 and single["split"] is None and not single["play_only"]
    assert single["steps"] == 16 and single["articulate_nll"] > 0
    code, folder, _ = _evaluate_cli(capsys, "--model", model_path, "--data", tmp_path / "midi")
    assert code == 0
    assert folder["pieces"] == 2 and [s["path"] for s in folder["skipped"]] == [
        str(tmp_path / "midi" / "broken.mid")]
    # Per piece, a MIDI file is named by its path.
    code, each, _ = _evaluate_cli(capsys, "--model", model_path, "--data", tmp_path / "midi",
                                  "--per-piece")
    assert code == 0
    assert sorted(p["piece"] for p in each["per_piece"]) == sorted(
        [str(one), str(tmp_path / "midi" / "sub" / "two.mid")])
    # A split means nothing for MIDI scored whole.
    code, _, err = _evaluate_cli(capsys, "--model", model_path, "--data", one, "--split", "train")
    assert code == 2 and "leave --split out" in err


@pytest.mark.parametrize("play_only", [True, False])
def test_cli_play_only_model_scores_midi_without_seeing_its_articulation(
        play_only, write_midi, tmp_path, capsys):
    """Struck twice or held once sound the same: a play-only model, shown no
    articulation, scores both alike (as its sampler and training see them);
    a model that learned articulation tells them apart."""
    model_path = _tiny_model_file(tmp_path, play_only=play_only, steps_per_quarter=4)
    struck = write_midi("struck.mid", [(60, 0, 1), (60, 1, 2), (48, 0, 2)])
    held = write_midi("held.mid", [(60, 0, 2), (48, 0, 2)])
    scores = []
    for path in (struck, held):
        code, result, err = _evaluate_cli(capsys, "--model", model_path, "--data", path)
        assert code == 0, err
        assert result["play_only"] == play_only
        scores.append(result["frame_nll"])
    assert (scores[0] == pytest.approx(scores[1], rel=1e-6)) == play_only


def test_cli_empty_split_hint_names_the_split_that_has_the_pieces(write_midi, tmp_path, capsys):
    from biax_keras import data

    prepared = tmp_path / "prepared"
    data.prepare(str(write_midi("one.mid")), str(prepared))
    model_path = _tiny_model_file(tmp_path, play_only=False, steps_per_quarter=4)
    code, _, err = _evaluate_cli(capsys, "--model", model_path, "--data", prepared)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--split train" in err and "--split valid" not in err


def test_cli_model_range_not_covering_the_data_is_one_line_exit_2(jsb_file, tmp_path, capsys):
    # MIDI 60..71: the valid split's 57, 55, 48, 47 (and their repeats) fall outside.
    model_path = _tiny_model_file(tmp_path, lowest_pitch=60, num_notes=12)
    code, _, err = _evaluate_cli(capsys, "--model", model_path, "--data", jsb_file)
    assert code == 2
    line, = err.strip().splitlines()
    assert "outside the model's range" in line and "MIDI 60..71" in line
    expected = sum(1 for piece in JSB_SPLITS["valid"] for step in piece for pitch in step
                   if not 60 <= pitch <= 71)
    assert f"{expected} notes" in line


def test_cli_missing_split_and_non_model_are_one_line_exit_2(jsb_file, tmp_path, capsys):
    model_path = _tiny_model_file(tmp_path)
    code, _, err = _evaluate_cli(capsys, "--model", model_path, "--data", jsb_file,
                                 "--split", "test")
    assert code == 2 and "no pieces" in err and len(err.strip().splitlines()) == 1
    not_a_model = tmp_path / "notes.keras"
    not_a_model.write_text("hello")
    code, _, err = _evaluate_cli(capsys, "--model", not_a_model, "--data", jsb_file)
    assert code == 2 and "is not a Keras model file" in err and len(err.strip().splitlines()) == 1


def test_cli_resolution_mismatch_is_one_line_exit_2(jsb_file, tmp_path, capsys):
    from biax_keras import data

    prepared = tmp_path / "prepared"
    data.prepare(str(jsb_file), str(prepared), steps_per_quarter=4, lowest_pitch=21, num_notes=88)
    model_path = _tiny_model_file(tmp_path)  # one step per quarter note
    code, _, err = _evaluate_cli(capsys, "--model", model_path, "--data", prepared)
    assert code == 2 and "--steps-per-quarter 1" in err and len(err.strip().splitlines()) == 1
    assert "16th notes" in err and "quarter notes" in err
