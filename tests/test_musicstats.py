import json
import os

import numpy as np
import pytest

from biax_keras.app import cli
from biax_keras.errors import UserError
from biax_keras.music import copies, plots, statistics

# Rolls here span MIDI 0..127 (lowest_pitch 0, as the statistics read files)
# unless a test says otherwise.
NOTES = 128
C4 = 60


def _roll(steps, notes, num_notes=NOTES):
    """A roll with notes given as (pitch, first step, length); each note is struck once."""
    roll = np.zeros((steps, num_notes, 2), np.uint8)
    for pitch, start, length in notes:
        roll[start : start + length, pitch, 0] = 1
        roll[start, pitch, 1] = 1
    return roll


def _random_roll(rng, steps, density=0.04, low=36, high=96):
    """Random chords in MIDI low..high, never silent: unrelated music that copies nothing."""
    roll = np.zeros((steps, NOTES, 2), np.uint8)
    play = rng.random((steps, high - low)) < density
    play[np.arange(steps), rng.integers(0, high - low, steps)] = True
    roll[:, low:high, 0] = play
    roll[:, low:high, 1] = play
    return roll


# ----------------------------------------------------------------------------
# Statistics of hand-made pieces
# ----------------------------------------------------------------------------


def test_polyphony_silence_and_range():
    # Steps 0-3: C-E-G; steps 4-5: silent; steps 6-7: C alone; 8 steps in all.
    roll = _roll(8, [(60, 0, 4), (64, 0, 4), (67, 0, 4), (48, 6, 2)])
    stats = statistics.piece_statistics(roll)
    assert stats["steps"] == 8
    assert stats["polyphony_mean"] == pytest.approx((4 * 3 + 2 * 1) / 8)
    assert stats["polyphony_mean_sounding"] == pytest.approx((4 * 3 + 2 * 1) / 6)
    assert stats["silent_share"] == pytest.approx(2 / 8)
    hist = stats["polyphony_histogram"]
    assert hist["counts"][:4] == [2, 2, 0, 4]
    assert sum(hist["counts"]) == 8
    assert stats["pitch_lowest"] == 48
    assert stats["pitch_highest"] == 67
    assert stats["pitch_range_mean"] == 19


def test_pitch_range_mean_is_over_pieces_and_silent_pieces_count_as_steps():
    a = _roll(4, [(60, 0, 1), (72, 1, 1)])  # range 12
    b = _roll(4, [(40, 0, 1), (42, 0, 1)])  # range 2
    silent = np.zeros((4, NOTES, 2), np.uint8)
    stats = statistics.set_statistics([a, b, silent])
    assert stats["pieces"] == 3
    assert stats["pitch_range_mean"] == pytest.approx(7.0)
    assert (stats["pitch_lowest"], stats["pitch_highest"]) == (40, 72)
    assert stats["steps"] == 12
    assert stats["silent_share"] == pytest.approx((2 + 3 + 4) / 12)


def test_note_lengths_tell_held_from_restruck_notes():
    roll = np.zeros((8, NOTES, 2), np.uint8)
    roll[0:4, 60] = [[1, 1], [1, 0], [1, 0], [1, 0]]  # one note of 4 steps
    roll[0:4, 62] = [[1, 1], [1, 1], [1, 1], [1, 1]]  # four notes of 1 step
    roll[0:6, 64] = [[1, 1], [1, 0], [1, 1], [1, 0], [1, 0], [1, 0]]  # 2 then 4
    roll[0:8, 67, 0] = 1  # held to the end with no articulation at all: one note of 8
    roll[0:8, 67, 1] = 0
    stats = statistics.piece_statistics(roll)
    hist = dict(zip(stats["note_length_histogram"]["bins"], stats["note_length_histogram"]["counts"]))
    assert hist == {"1": 4, "2": 1, "3": 0, "4": 2, "5-6": 0, "7-8": 1,
                    "9-12": 0, "13-16": 0, "17+": 0}
    assert stats["notes"] == 8
    assert stats["note_length_mean"] == pytest.approx((4 + 4 * 1 + 2 + 4 + 8) / 8)


def test_note_length_bins_cover_long_notes():
    roll = _roll(40, [(60, 0, 16), (62, 0, 17), (64, 0, 40), (65, 0, 5)])
    counts = statistics.piece_statistics(roll)["note_length_histogram"]["counts"]
    assert counts == [0, 0, 0, 0, 1, 0, 0, 1, 2]


def test_play_only_rolls_count_a_note_per_stretch_of_play():
    play = np.zeros((6, NOTES), np.uint8)
    play[0:2, 60] = 1
    play[3:6, 60] = 1
    stats = statistics.piece_statistics(play)
    assert stats["notes"] == 2
    assert stats["note_length_histogram"]["counts"][1:3] == [1, 1]


def test_pitch_class_histogram_counts_onsets_not_sounding_steps():
    # C held 8 steps, E struck twice, C an octave up once: C 2 onsets, E 2.
    roll = _roll(8, [(60, 0, 8), (64, 0, 2), (64, 4, 2), (72, 6, 1)])
    hist = statistics.piece_statistics(roll)["pitch_class_histogram"]
    assert hist["bins"][0] == "C" and hist["bins"][4] == "E"
    assert hist["counts"] == [2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]
    assert hist["shares"][0] == pytest.approx(0.5)


def test_pitch_class_follows_lowest_pitch():
    # Note 0 of a roll from MIDI 21 (A0) is pitch class A.
    roll = _roll(2, [(0, 0, 1), (3, 1, 1)], num_notes=88)
    hist = statistics.piece_statistics(roll, lowest_pitch=21)["pitch_class_histogram"]
    assert hist["counts"][9] == 1 and hist["counts"][0] == 1


def test_scale_share_of_a_major_scale_is_one():
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    roll = _roll(len(scale), [(p, i, 1) for i, p in enumerate(scale)])
    stats = statistics.piece_statistics(roll)
    assert stats["in_scale_share"] == 1.0
    assert stats["key"] == "C major"


def test_scale_share_finds_harmonic_minor():
    a_minor = [57, 59, 60, 62, 64, 65, 68, 69, 68, 69]  # with the raised 7th, G#
    roll = _roll(len(a_minor), [(p, i, 1) for i, p in enumerate(a_minor)])
    stats = statistics.piece_statistics(roll)
    assert stats["in_scale_share"] == 1.0
    assert stats["key"] == "A minor"


def test_scale_share_of_a_chromatic_piece_is_below_one():
    roll = _roll(12, [(60 + i, i, 1) for i in range(12)])
    stats = statistics.piece_statistics(roll)
    assert stats["in_scale_share"] == pytest.approx(7 / 12)


def test_scale_share_is_pooled_over_notes_with_a_key_per_piece():
    c_major = _roll(7, [(p, i, 1) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71])])
    # F# major is a different key: in its own key every note fits too.
    f_sharp = _roll(7, [(p + 6, i, 1) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71])])
    chromatic = _roll(12, [(60 + i, i, 1) for i in range(12)])
    stats = statistics.set_statistics([c_major, f_sharp, chromatic])
    assert stats["in_scale_share"] == pytest.approx((7 + 7 + 7) / 26)


def test_silent_piece_has_no_notes_and_no_key():
    stats = statistics.piece_statistics(np.zeros((5, NOTES, 2), np.uint8))
    assert stats["notes"] == 0 and stats["silent_share"] == 1.0
    assert stats["pitch_lowest"] is None and stats["key"] is None
    assert stats["in_scale_share"] == 0.0
    json.dumps(stats)


def test_not_a_roll_is_a_value_error():
    with pytest.raises(ValueError, match="roll"):
        statistics.piece_statistics(np.zeros((4, 5, 3)))


# ----------------------------------------------------------------------------
# KL divergence
# ----------------------------------------------------------------------------


def test_kl_of_identical_histograms_is_zero():
    p = [3, 1, 0, 0, 2, 1, 0, 4, 0, 1, 0, 2]
    assert statistics.pitch_class_kl(p, p) == pytest.approx(0.0, abs=1e-12)
    # Counts and shares of the same histogram are the same distribution.
    assert statistics.pitch_class_kl(p, np.array(p) / 14) == pytest.approx(0.0, abs=1e-12)


def test_kl_is_positive_finite_and_asymmetric():
    uniform = np.ones(12)
    c_only = np.eye(12)[0]
    forward = statistics.pitch_class_kl(c_only, uniform)
    assert forward == pytest.approx(np.log(12), rel=1e-4)
    backward = statistics.pitch_class_kl(uniform, c_only)
    assert np.isfinite(backward) and backward > forward


def test_kl_needs_matching_histograms():
    with pytest.raises(ValueError):
        statistics.pitch_class_kl(np.ones(12), np.ones(11))
    with pytest.raises(ValueError):
        statistics.histogram_kl([1, -1], [1, 1])


# ----------------------------------------------------------------------------
# Copy check
# ----------------------------------------------------------------------------


def _brute_force_longest(generated, reference):
    """Longest copied run of each generated piece, by trying every alignment."""
    def sets(roll):
        return [frozenset(np.flatnonzero(step)) for step in roll[..., 0]]

    result = []
    for g in map(sets, generated):
        best = 0
        for r in map(sets, reference):
            for i in range(len(g)):
                for j in range(len(r)):
                    length = 0
                    while i + length < len(g) and j + length < len(r) and g[i + length]:
                        shift = min(r[j]) - min(g[i]) if r[j] else None
                        if shift is None or {p + shift for p in g[i + length]} != r[j + length]:
                            break
                        length += 1
                    best = max(best, length)
        result.append(best)
    return result


def test_copy_check_finds_a_planted_transposed_two_bar_copy():
    rng = np.random.default_rng(5)
    reference = [_random_roll(rng, 200) for _ in range(20)]
    generated = [_random_roll(rng, 160) for _ in range(10)]
    # Two bars (32 steps) of reference piece 7 from step 50, up a fourth, at step 100.
    passage = reference[7][50:82]
    assert passage[..., 0].any(axis=1).all()  # every step sounds: the run is unbroken
    generated[3][100:132] = np.roll(passage, 5, axis=1)
    # Make sure the copy is exactly two bars long.
    generated[3][99] = 0
    generated[3][132] = 0

    match = copies.longest_copied_run(generated, reference)
    assert match.length == 32
    assert (match.generated_index, match.generated_start) == (3, 100)
    assert (match.reference_index, match.reference_start) == (7, 50)
    assert match.transposition == -5  # the generated passage lies 5 semitones above
    assert match.per_piece[3] == 32
    assert max(match.per_piece[:3] + match.per_piece[4:]) < 8


def test_copy_check_finds_nothing_long_in_unrelated_pieces():
    rng = np.random.default_rng(6)
    reference = [_random_roll(rng, 200) for _ in range(30)]
    generated = [_random_roll(rng, 200) for _ in range(10)]
    match = copies.longest_copied_run(generated, reference)
    assert match.length < 8
    assert len(match.per_piece) == 10


def test_copy_check_matches_brute_force_on_small_pieces():
    rng = np.random.default_rng(7)
    for _ in range(15):
        def small():
            roll = np.zeros((int(rng.integers(1, 14)), 8, 2), np.uint8)
            roll[..., 0] = rng.random(roll.shape[:2]) < rng.choice([0.1, 0.25])
            roll[..., 1] = roll[..., 0]
            return roll
        generated = [small() for _ in range(int(rng.integers(1, 4)))]
        reference = [small() for _ in range(int(rng.integers(1, 4)))]
        reference[0] = np.concatenate([reference[0], np.roll(generated[0], 2, axis=1)])
        match = copies.longest_copied_run(generated, reference)
        assert list(match.per_piece) == _brute_force_longest(generated, reference)


def test_silence_is_never_copied():
    rng = np.random.default_rng(8)
    reference = [_random_roll(rng, 64, density=0.01)]
    silent = np.zeros((64, NOTES, 2), np.uint8)
    match = copies.longest_copied_run([silent], reference)
    assert match.length == 0 and match.generated_index is None


def test_copy_check_of_a_single_chord_is_one_step():
    generated = [_roll(3, [(60, 0, 1), (64, 0, 1)])]
    reference = [_roll(4, [(50, 2, 1), (54, 2, 1)])]
    match = copies.longest_copied_run(generated, reference)
    assert (match.length, match.generated_start, match.reference_start) == (1, 0, 2)
    assert match.transposition == -10


def test_compare_rolls_gives_json_with_kl_and_copy():
    rng = np.random.default_rng(9)
    reference = [_random_roll(rng, 64) for _ in range(3)]
    generated = [reference[1][:40].copy()]
    result = statistics.compare_rolls(generated, reference, generated_names=["g.mid"],
                                      reference_names=["a.mid", "b.mid", "c.mid"])
    copy = result["comparison"]["copy"]
    assert copy["steps"] == 40
    assert copy["reference_piece"] == "b.mid" and copy["transposition"] == 0
    assert copy["bars"] == copy["steps"] / 16
    assert result["comparison"]["pitch_class_kl"] >= 0
    json.loads(json.dumps(result))
    text = statistics.format_comparison(result)
    assert "longest copied run" in text and "b.mid" in text


# ----------------------------------------------------------------------------
# Plot
# ----------------------------------------------------------------------------


def test_plot_writes_a_png(tmp_path):
    a = statistics.set_statistics([_roll(8, [(60, 0, 4), (64, 4, 4)])])
    b = statistics.set_statistics([_roll(8, [(62, 0, 2), (65, 2, 6)])])
    path = tmp_path / "stats.png"
    plots.plot_comparison(a, b, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["stats.png"]  # no temporary file left behind


def test_plot_creates_its_folder_with_normal_permissions(tmp_path):
    a = statistics.set_statistics([_roll(4, [(60, 0, 4)])])
    path = tmp_path / "new" / "deeper" / "stats.png"
    plots.plot_comparison(a, a, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The mode a plain open() gives (not a temporary file's private 0600).
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(UserError, match="in the way"):
        plots.plot_comparison(a, a, str(tmp_path / "file" / "stats.png"))


# ----------------------------------------------------------------------------
# Files and the command line
# ----------------------------------------------------------------------------


def _write_midi(path, notes, qpm=120.0):
    """Writes (pitch, start quarter, length in quarters) notes as a MIDI file."""
    import note_seq

    ns = note_seq.NoteSequence(ticks_per_quarter=220)
    ns.tempos.add(qpm=qpm)
    ns.time_signatures.add(numerator=4, denominator=4)
    seconds = 60.0 / qpm
    for pitch, start, length in notes:
        ns.notes.add(pitch=pitch, velocity=80, start_time=start * seconds,
                     end_time=(start + length) * seconds)
    ns.total_time = max(n.end_time for n in ns.notes)
    note_seq.sequence_proto_to_midi_file(ns, str(path))


def _has_representation():
    try:
        from biax_keras.music import representation  # noqa: F401
    except ImportError:
        return False
    return hasattr(representation, "midi_to_roll")


needs_representation = pytest.mark.skipif(
    not _has_representation(), reason="biax_keras.representation is not there yet")


def test_cli_empty_folder_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "gen").mkdir()
    (tmp_path / "ref").mkdir()
    code = cli.main(["evaluate", "--generated", str(tmp_path / "gen"),
                     "--reference", str(tmp_path / "ref"), "--json"])
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "no MIDI files" in captured.err


def test_cli_without_a_mode_is_a_user_error(capsys):
    assert cli.main(["evaluate"]) == 2
    assert "--generated" in capsys.readouterr().err
    assert cli.main(["evaluate", "--generated", "x"]) == 2
    assert "--reference" in capsys.readouterr().err


def test_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        statistics.read_set(str(tmp_path / "nope"))


@needs_representation
def test_cli_compares_two_folders_as_json(tmp_path, capsys):
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    gen, ref = tmp_path / "gen", tmp_path / "ref" / "nested"
    gen.mkdir()
    ref.mkdir(parents=True)
    _write_midi(gen / "a.mid", [(p, i, 1) for i, p in enumerate(scale)])
    _write_midi(ref / "b.mid", [(p + 2, i * 0.5, 0.5) for i, p in enumerate(scale * 2)])
    _write_midi(ref / "c.midi", [(48, 0, 4), (52, 0, 4), (55, 0, 4)])
    (ref / "broken.mid").write_bytes(b"not a midi file")
    plot = tmp_path / "stats.png"
    code = cli.main(["evaluate", "--generated", str(gen), "--reference", str(tmp_path / "ref"),
                     "--plot", str(plot), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert set(result) >= {"generated", "reference", "comparison", "steps_per_quarter", "plot"}
    assert result["generated"]["pieces"] == 1 and result["reference"]["pieces"] == 2
    assert result["generated"]["in_scale_share"] == 1.0
    assert result["generated"]["pitch_lowest"] == 60
    assert [s["path"] for s in result["reference"]["skipped"]] == [str(ref / "broken.mid")]
    assert set(result["comparison"]) >= {"pitch_class_kl", "note_length_kl", "polyphony_kl", "copy"}
    assert result["comparison"]["copy"]["steps"] >= 1
    assert plot.read_bytes()[:4] == b"\x89PNG"


@needs_representation
def test_cli_prints_a_readable_summary(tmp_path, capsys):
    (tmp_path / "g").mkdir()
    (tmp_path / "r").mkdir()
    _write_midi(tmp_path / "g" / "a.mid", [(60, 0, 1), (64, 1, 1)])
    _write_midi(tmp_path / "r" / "b.mid", [(62, 0, 1), (66, 1, 1)])
    assert cli.main(["evaluate", "--generated", str(tmp_path / "g"),
                     "--reference", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "notes in key" in out and "longest copied run" in out


@needs_representation
def test_folder_of_only_unreadable_files_is_a_user_error(tmp_path):
    (tmp_path / "x.mid").write_bytes(b"garbage")
    with pytest.raises(UserError, match="no readable MIDI files .*1 unreadable"):
        statistics.read_set(str(tmp_path))


# ----------------------------------------------------------------------------
# Samples against their collection: density, key, intervals, a two-sample test
# ----------------------------------------------------------------------------


def test_density_intervals_and_pitch_classes_in_key_have_known_values():
    # C and G held together for 4 steps, then E alone for 4: 3 onsets in 8 steps.
    roll = _roll(8, [(C4, 0, 4), (C4 + 7, 0, 4), (C4 + 4, 4, 4)])
    stats = statistics.piece_statistics(roll)
    assert stats["onsets_per_step"] == 3 / 8
    assert stats["polyphony_mean"] == (2 * 4 + 4) / 8
    intervals = dict(zip(statistics.INTERVAL_NAMES, stats["interval_histogram"]["counts"]))
    assert intervals["P5"] == 4 and sum(intervals.values()) == 4  # one pair at 4 steps
    # The same in D instead of C: pitch classes differ, pitch classes in key do not.
    in_d = statistics.piece_statistics(_roll(8, [(C4 + 2, 0, 4), (C4 + 9, 0, 4), (C4 + 6, 4, 4)]))
    assert in_d["pitch_class_histogram"] != stats["pitch_class_histogram"]
    assert in_d["pitch_class_in_key_histogram"] == stats["pitch_class_in_key_histogram"]
    # MusPy's own metrics of the same piece: three pitch classes used once each.
    field = statistics.field_metrics([roll], steps_per_quarter=4)
    assert field["pitch_class_entropy"] == pytest.approx(np.log2(3))
    assert field["polyphony_rate"] == 0.0 and field["scale_consistency"] == 1.0


def test_against_the_collection_flags_what_lies_outside_its_bounds():
    rng = np.random.default_rng(0)
    collection = [_random_roll(rng, 96) for _ in range(6)]
    alike = statistics.compare_rolls([_random_roll(rng, 96) for _ in range(6)], collection)
    within = alike["comparison"]["against_collection"]
    assert within["onsets_per_step_ratio"]["within"] and within["notes_sounding_ratio"]["within"]
    assert within["silent_share_difference"]["within"]
    # Half the bars silent: density and silence fall outside, the rest stays.
    thinned = []
    for roll in collection:
        roll = roll.copy()
        for start in range(16, 96, 32):
            roll[start:start + 16] = 0
        thinned.append(roll)
    out = statistics.compare_rolls(thinned, collection)["comparison"]["against_collection"]
    assert not out["onsets_per_step_ratio"]["within"] and not out["silent_share_difference"]["within"]
    assert out["silent_share_difference"]["value"] == pytest.approx(0.5, abs=0.01)
    assert not out["all"]


def test_the_two_sample_test_tells_different_music_apart_and_not_alike_music():
    from biax_keras.music.two_sample import two_sample_test

    rng = np.random.default_rng(1)
    collection = [_random_roll(rng, 160) for _ in range(8)]
    alike = [_random_roll(rng, 160) for _ in range(8)]
    dense = [_random_roll(rng, 160, density=0.15) for _ in range(8)]
    assert two_sample_test(dense, collection, window_steps=16)["accuracy"] > 0.9
    assert two_sample_test(alike, collection, window_steps=16)["accuracy"] < 0.75
    with pytest.raises(UserError, match="two-sample test needs at least 2"):
        two_sample_test(collection[:1], collection, window_steps=16)


def _jsb_reference(path, steps=32):
    piece = [[60, 64, 67] if t % 2 == 0 else [62, 65, 69] for t in range(steps)]
    path.write_text(json.dumps({"train": [piece], "valid": [piece, piece[::-1]], "test": []}))
    return path


@needs_representation
def test_a_jsb_file_is_a_reference_at_its_own_resolution(tmp_path, capsys):
    (tmp_path / "gen").mkdir()
    # One step per quarter note, as the reference: chords on the beat.
    _write_midi(tmp_path / "gen" / "a.mid", [(p, t, 1) for t in range(16) for p in (60, 64, 67)])
    reference = _jsb_reference(tmp_path / "tiny-quarter.json")
    argv = ["evaluate", "--generated", str(tmp_path / "gen"), "--reference", str(reference)]
    assert cli.main(argv + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps_per_quarter"] == 1 and result["reference"]["split"] == "valid"
    assert result["reference"]["pieces"] == 2
    assert result["generated"]["onsets_per_step"] == pytest.approx(3.0, rel=0.01)
    assert set(result["comparison"]["against_collection"]) >= {"onsets_per_step_ratio", "all"}

    for extra, words in [
        (["--reference-split", "test"], "has no pieces in its 'test' split"),
        (["--steps-per-quarter", "4"], "is at quarter notes, not at --steps-per-quarter 4"),
    ]:
        assert cli.main(argv + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    # Music composed at 16th notes is not compared with quarter notes.
    _write_midi(tmp_path / "gen" / "a.mid", [(60 + t % 5, t * 0.25, 0.25) for t in range(64)])
    assert cli.main(argv) == 2
    assert "at a finer resolution" in capsys.readouterr().err
    # A reference in a format the report cannot read.
    (tmp_path / "notes.txt").write_text("not music")
    assert cli.main(["evaluate", "--generated", str(tmp_path / "gen"),
                     "--reference", str(tmp_path / "notes.txt")]) == 2
    assert "no readable MIDI files" in capsys.readouterr().err
    (tmp_path / "empty-quarter.json").write_text(json.dumps({"valid": []}))
    assert cli.main(["evaluate", "--generated", str(tmp_path / "gen"), "--reference",
                     str(tmp_path / "empty-quarter.json")]) == 2
    assert "has no pieces in its 'valid' split" in capsys.readouterr().err
