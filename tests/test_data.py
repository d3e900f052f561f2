"""prepare(): sources, bad files, splits, output; make_dataset(): shapes, seeds, transposition."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import PHRASE, midi_bytes

from biax_keras import data
from biax_keras.errors import UserError
from biax_keras.music import representation as rep

JSB_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "jsb"
REPORT_KEYS = {"read", "skipped", "notes_dropped", "pieces", "steps", "seconds"}


def long_piece(pitches, bars, offset=0):
    """Notes of `pitches` re-struck every quarter for `bars` bars of 4/4."""
    return [(p + offset, q, q + 1) for q in range(4 * bars) for p in pitches]


# ----------------------------------------------------------------------------
# prepare
# ----------------------------------------------------------------------------


def test_prepare_reads_good_files_and_skips_every_bad_kind(broken_midi_folder, tmp_path):
    folder, good, bad = broken_midi_folder
    out = tmp_path / "prepared"
    report = data.prepare(folder, out, workers=1)

    assert REPORT_KEYS <= set(report)
    assert {str(Path(p).relative_to(folder)) for p in report["read"]} == good
    reasons = {str(Path(s["path"]).relative_to(folder)): s["reason"] for s in report["skipped"]}
    assert set(reasons) == set(bad)
    for name, word in bad.items():
        assert word in reasons[name], (name, reasons[name])
    assert sum(report["pieces"].values()) == len(good)
    assert report["notes_dropped"] == 0

    assert sorted(p.name for p in out.iterdir()) == [
        "lengths.json", "meta.json", "report.json", "test-00000-of-00001.tfrecord",
        "train-00000-of-00001.tfrecord", "valid-00000-of-00001.tfrecord"]
    assert json.loads((out / "report.json").read_text()) == report
    meta = data.load_meta(out)
    assert meta == {"format": "biax_keras.data.records", "version": 2, "steps_per_quarter": 4,
                    "lowest_pitch": 24, "num_notes": 78, "play_only": False,
                    "source": str(folder), "style": "midi",  # the folder's name
                    "shards": {"train": 1, "valid": 1, "test": 1}}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left
    assert "Skipped:" in data.format_report(report)


def test_prepared_pieces_read_back_exactly(write_midi, tmp_path):
    path = write_midi("one.mid", PHRASE + [(10, 0, 1)])
    report = data.prepare(path, tmp_path / "out", split=(1.0, 0.0, 0.0))
    assert report["pieces"] == {"train": 1, "valid": 0, "test": 0}
    assert report["notes_dropped"] == 1 and report["notes_dropped_by_piece"] == {str(path): 1}
    [(name, roll, beat)] = list(data.read_pieces(tmp_path / "out", "train"))
    expected, expected_beat = rep.midi_to_roll(path)
    assert name == str(path)
    np.testing.assert_array_equal(roll, expected)
    np.testing.assert_array_equal(beat, expected_beat)
    assert report["steps"]["train"] == len(roll)


def test_prepare_in_parallel_matches_in_process(broken_midi_folder, tmp_path):
    folder, _, _ = broken_midi_folder
    serial = data.prepare(folder, tmp_path / "a", workers=1)
    parallel = data.prepare(folder, tmp_path / "b", workers=2)
    for key in ("read", "skipped", "pieces", "steps"):
        assert serial[key] == parallel[key]


def test_split_is_seeded_by_piece():
    names = [f"piece{i}" for i in range(100)]
    first = data.assign_splits(names, (0.8, 0.1, 0.1), seed=1)
    assert first == data.assign_splits(list(reversed(names)), (0.8, 0.1, 0.1), seed=1)
    assert first != data.assign_splits(names, (0.8, 0.1, 0.1), seed=2)
    counts = {s: list(first.values()).count(s) for s in data.SPLITS}
    assert counts == {"train": 80, "valid": 10, "test": 10}
    small = data.assign_splits(["a", "b", "c"], (0.8, 0.1, 0.1), seed=0)
    assert sorted(small.values()) == ["test", "train", "valid"]


def test_prepare_replaces_a_previous_dataset_only_when_asked_and_guards_other_folders(
        write_midi, tmp_path):
    out = tmp_path / "out"
    data.prepare(write_midi("a.mid"), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # Runs may have been trained on it: refused, saying what it holds.
    with pytest.raises(UserError, match=r"already holds a prepared dataset \(1 pieces from .*a\.mid\).*--overwrite"):
        data.prepare(write_midi("b.mid", [(62, 0, 1)]), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    data.prepare(tmp_path / "b.mid", out, overwrite=True)
    assert json.loads((out / "report.json").read_text())["read"] == [str(tmp_path / "b.mid")]

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(UserError, match="other files"):
        data.prepare(tmp_path / "a.mid", precious)
    assert (precious / "thesis.txt").exists()


def test_prepare_user_errors_leave_nothing_behind(tmp_path, write_midi):
    with pytest.raises(UserError, match="does not exist"):
        data.prepare(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no MIDI files"):
        data.prepare(tmp_path / "empty", tmp_path / "out")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.mid").write_bytes(b"")
    with pytest.raises(UserError, match="no piece .* could be read.*empty file"):
        data.prepare(tmp_path / "bad", tmp_path / "out")
    with pytest.raises(UserError, match="split"):
        data.prepare(write_midi("a.mid"), tmp_path / "out", split=(0.5, 0.1, 0.1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mid", "bad", "empty"]


def test_prepare_note_sequence_tfrecord(tmp_path):
    import tensorflow as tf

    path = tmp_path / "seqs.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for offset in range(3):
            ns = rep.roll_to_note_sequence(rep.midi_to_roll(_write(
                tmp_path / f"{offset}.mid", midi_bytes([(p + offset, s, e) for p, s, e in PHRASE])))[0])
            writer.write(ns.SerializeToString())
        writer.write(b"this is not a NoteSequence proto \xff\xff")
    report = data.prepare(path, tmp_path / "out")
    assert len(report["read"]) == 3 and report["read"][0] == f"{path}#0"
    assert len(report["skipped"]) == 1 and "NoteSequence" in report["skipped"][0]["reason"]


def _write(path, content):
    path.write_bytes(content)
    return path


def test_prepare_jsb_json_and_pickle_with_some_splits(tmp_path):
    # The second train piece (MIDI 105) lies above the grid 21..100 used here:
    # it is skipped for its range, not refused.
    content = {"train": [[[60, 64], [60, 64], [62], []], [[105]]], "test": [[[48, 55, 64]] * 8]}
    (tmp_path / "jsb.json").write_text(json.dumps(content))
    with open(tmp_path / "jsb.pickle", "wb") as f:
        pickle.dump({k: [[tuple(float(p) for p in s) for s in piece] for piece in v]
                     for k, v in content.items()}, f)
    for name in ("jsb.json", "jsb.pickle"):
        out = tmp_path / (name + ".out")
        report = data.prepare(tmp_path / name, out, steps_per_quarter=1, lowest_pitch=21, num_notes=80)
        assert report["pieces"] == {"train": 1, "valid": 0, "test": 1}
        assert report["steps"] == {"train": 4, "valid": 0, "test": 8}
        assert "outside the note range" in report["skipped"][0]["reason"]
        meta = data.load_meta(out)
        assert meta["play_only"] is True and meta["num_notes"] == 80
        [(_, roll, beat)] = list(data.read_pieces(out, "train"))
        assert roll[..., 1].sum() == 0 and roll[:, 60 - 21, 0].tolist() == [1, 1, 0, 0]
        assert beat.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("pitch", [200, 5, -3])
def test_prepare_refuses_jsb_pitches_off_the_piano(tmp_path, pitch):
    # MIDI pitches outside 21..108 mean the file is not what the format says
    # (key indices 0..87 are the usual mistake): one clear error, no dataset.
    path = tmp_path / "indices.json"
    path.write_text(json.dumps({"train": [[[60, 64], [pitch]]], "valid": [[[62]]]}))
    with pytest.raises(UserError, match=r"piece train/0 step 1 has pitch .*21\.\.108"):
        data.prepare(path, tmp_path / "out", steps_per_quarter=1, lowest_pitch=21, num_notes=88)
    assert not (tmp_path / "out").exists()


def test_jsb_quarter_file_from_shared_data(tmp_path):
    path = JSB_DIR / "jsb-chorales-quarter.json"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    report = data.prepare(path, tmp_path / "jsb", steps_per_quarter=1, lowest_pitch=21, num_notes=88)
    expected = {k: len(v) for k, v in json.loads(path.read_text()).items() if k in data.SPLITS}
    assert report["pieces"] == {s: expected.get(s, 0) for s in data.SPLITS}
    assert report["skipped"] == [] and report["notes_dropped"] == 0
    assert data.load_meta(tmp_path / "jsb")["play_only"] is True


def test_bach_handful_of_chorales(tmp_path):
    report = data.prepare("bach", tmp_path / "bach", limit=3, workers=1)
    assert len(report["read"]) == 3 and all(n.startswith("bach/bwv") for n in report["read"])
    _, roll, beat = next(data.read_pieces(tmp_path / "bach", "train"))
    assert roll.shape[1:] == (78, 2) and roll[..., 1].sum() > 0 and beat.max() <= 15


@pytest.mark.slow
def test_bach_every_chorale(tmp_path):
    report = data.prepare("bach", tmp_path / "bach")
    assert len(report["read"]) >= 340
    assert report["skipped"] == []


def test_load_meta_refuses_other_folders(tmp_path):
    with pytest.raises(UserError, match="not a prepared dataset.*biax prepare"):
        data.load_meta(tmp_path)
    (tmp_path / "meta.json").write_text('{"format": "something else"}')
    with pytest.raises(UserError, match="not a biax_keras prepared dataset"):
        data.load_meta(tmp_path)


# ----------------------------------------------------------------------------
# make_dataset
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared folder: 6 pieces of 4-8 bars, some touching the note range's ends."""
    root = tmp_path_factory.mktemp("prepared")
    pieces = {
        "edges.mid": long_piece([24, 101], 4) + long_piece([60], 4),  # no room to transpose
        "low.mid": long_piece([26, 40], 5),
        "high.mid": long_piece([90, 99], 6),
        "middle.mid": long_piece([60, 64, 67], 8),
        "short.mid": long_piece([60], 1),  # 16 steps: shorter than the windows used
        "mixed.mid": long_piece([48, 55], 4) + long_piece([72], 2),
    }
    for name, notes in pieces.items():
        (root / name).write_bytes(midi_bytes(notes))
    data.prepare(root, root / "out", split=(1.0, 0.0, 0.0), workers=1)
    rolls = {name: roll for name, roll, _ in data.read_pieces(root / "out", "train")}
    return root / "out", rolls


def test_dataset_shapes_and_dtypes(prepared):
    import tensorflow as tf

    directory, _ = prepared
    dataset = data.make_dataset(directory, "train", window=32, batch_size=4, seed=0)
    inputs, target = next(iter(dataset))
    assert set(inputs) == {"roll", "beat", "target"}
    assert inputs["roll"].shape == (4, 32, 78, 2) and inputs["roll"].dtype == tf.float32
    assert inputs["beat"].shape == (4, 32) and inputs["beat"].dtype == tf.int32
    assert target.shape == (4, 32, 78, 2) and target.dtype == tf.float32
    np.testing.assert_array_equal(inputs["target"], target)
    # The inputs are the targets one step earlier.
    np.testing.assert_array_equal(inputs["roll"][:, 1:], target[:, :-1])
    spec = dataset.element_spec[0]["roll"]
    assert spec.shape == (4, 32, 78, 2)  # static, for model.fit and XLA


def test_same_seed_same_batches(prepared):
    directory, _ = prepared

    def batches(seed):
        dataset = data.make_dataset(directory, "train", window=32, batch_size=4, seed=seed)
        return [b[0]["roll"].numpy() for b, _ in zip(dataset, range(6))]

    first, again, other = batches(7), batches(7), batches(8)
    assert all((a == b).all() for a, b in zip(first, again))
    assert not all((a == b).all() for a, b in zip(first, other))


def test_windows_are_real_excerpts_transposed_within_range(prepared):
    directory, rolls = prepared
    pieces = [np.concatenate([np.zeros((1, 78, 2), np.uint8), r]) for r in rolls.values()]
    dataset = data.make_dataset(directory, "train", window=32, batch_size=8, seed=3, max_transpose=6)
    shifts = set()
    for (inputs, target), _ in zip(dataset, range(8)):
        windows = np.concatenate([inputs["roll"][:, :1], target], axis=1).astype(np.uint8)
        for window in windows:
            shifts.add(_find_excerpt(window, pieces))
    assert shifts <= set(range(-6, 7)) and len(shifts) > 3


def _find_excerpt(window, pieces):
    """The shift k such that `window` is an excerpt of a piece moved k semitones
    with nothing wrapped around; fails if there is none."""
    for piece in pieces:
        for start in range(len(piece) - len(window) + 1):
            excerpt = piece[start:start + len(window)]
            for k in range(-6, 7):
                moved = np.zeros_like(excerpt)
                if k >= 0:
                    moved[:, k:] = excerpt[:, :78 - k]
                    lost = excerpt[:, 78 - k:].sum()
                else:
                    moved[:, :k] = excerpt[:, -k:]
                    lost = excerpt[:, :-k].sum()
                if lost == 0 and (moved == window).all():
                    return k
    raise AssertionError("a window is not a transposed excerpt of any piece")


def test_evaluation_windows_are_whole_untransposed_and_ordered(prepared):
    directory, rolls = prepared
    dataset = data.make_dataset(directory, "train", window=32, batch_size=5, shuffle=False,
                                repeat=False, transpose=False)
    count = sum(int(t.shape[0]) for _, t in dataset)
    assert count == sum(len(r) // 32 for r in rolls.values() if len(r) >= 32)
    again = [t.numpy() for _, t in data.make_dataset(directory, "train", window=32, batch_size=5,
                                                     shuffle=False, repeat=False, transpose=False)]
    first_piece = next(iter(rolls.values()))
    np.testing.assert_array_equal(again[0][0], first_piece[:32])
    inputs, _ = next(iter(data.make_dataset(directory, "train", window=32, batch_size=1,
                                            shuffle=False, repeat=False)))
    assert inputs["roll"][0, 0].numpy().sum() == 0  # a piece starts from silence


@pytest.mark.parametrize("shuffle", [False, True])
def test_a_finite_pass_knows_its_length(prepared, shuffle):
    import tensorflow as tf

    directory, rolls = prepared
    lengths = [len(r) for r in rolls.values() if len(r) >= 32]
    windows = len(lengths) if shuffle else sum(n // 32 for n in lengths)
    dataset = data.make_dataset(directory, "train", window=32, batch_size=3, shuffle=shuffle,
                                repeat=False, seed=0)
    declared = int(dataset.cardinality())
    assert declared == -(-windows // 3)
    assert sum(1 for _ in dataset) == declared  # tf.data checks the count as it goes
    repeating = data.make_dataset(directory, "train", window=32, batch_size=3, seed=0)
    assert int(repeating.cardinality()) == int(tf.data.INFINITE_CARDINALITY)


def test_window_longer_than_every_piece_is_a_user_error(prepared):
    directory, rolls = prepared
    longest = max(len(r) for r in rolls.values())
    with pytest.raises(UserError, match=f"window 999 is longer than every piece.*N <= {longest}"):
        data.make_dataset(directory, "train", window=999)
    with pytest.raises(UserError, match="no pieces in its valid split"):
        data.make_dataset(directory, "valid")
