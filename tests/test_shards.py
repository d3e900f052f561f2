"""Sharded prepared folders: the writer, folders of the single-file format,
and make_dataset streaming from shards (cache budget, shuffle, sharding by file)."""

import json
import shutil

import pytest
from conftest import midi_bytes

from biax_keras import data
from biax_keras.data import pipeline, records
from biax_keras.errors import UserError


def phrase(root, bars):
    """Quarter-note arpeggios over `bars` bars of 4/4, from `root`."""
    return [(root + q % 3 * 4, q, q + 1) for q in range(4 * bars)]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """12 MIDI pieces of 3 to 8 bars (48 to 128 steps)."""
    folder = tmp_path_factory.mktemp("shards") / "midi"
    folder.mkdir()
    for i in range(12):
        (folder / f"piece{i:02d}.mid").write_bytes(midi_bytes(phrase(48 + i, 3 + i % 6)))
    return folder


@pytest.fixture(scope="module")
def sharded(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("sharded") / "out"
    report = data.prepare(source, out, split=(1.0, 0.0, 0.0), workers=1, shards=3)
    return out, report


def records_of(paths):
    import tensorflow as tf

    return [r for r in tf.data.TFRecordDataset([str(p) for p in paths]).as_numpy_iterator()]


def name_of(record):
    return records.tf_example_features(record)["name"].bytes_list.value[0].decode()


def test_prepare_writes_each_split_as_shards(sharded):
    out, report = sharded
    train = sorted(p.name for p in out.glob("train-*"))
    assert train == [f"train-0000{i}-of-00003.tfrecord" for i in range(3)]
    assert data.load_meta(out)["shards"] == {"train": 3, "valid": 1, "test": 1}
    # An empty split is one empty shard, so every split has its files.
    assert (out / "valid-00000-of-00001.tfrecord").stat().st_size == 0
    # Every piece is in the shard its name hashes to, once.
    seen = []
    for index, name in enumerate(train):
        for record in records_of([out / name]):
            seen.append(name_of(record))
            assert records.shard_of(name_of(record), 3) == index
    assert sorted(seen) == sorted(report["read"]) and len(report["read"]) == 12
    assert all(records_of([out / name]) for name in train)  # 12 names spread over all three
    lengths = json.loads((out / records.LENGTHS_FILE).read_text())
    assert sum(lengths["train"]) == report["steps"]["train"] and len(lengths["train"]) == 12
    assert sorted(data.piece_lengths(out, "train")) == lengths["train"]


def test_a_pieces_shard_does_not_depend_on_where_its_folder_lies():
    # The fixture's twelve names cover all three shards wherever pytest puts them.
    assert sorted(records.shard_of(f"/any/where/piece{i:02d}.mid", 3) for i in range(12)) == [
        0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2]
    for count in (3, 8):
        assert records.shard_of("/tmp/a/midi/piece03.mid", count) == records.shard_of(
            "/home/b/midi/piece03.mid", count) == records.shard_of("piece03.mid", count)
    assert records.shard_of("C:\\music\\piece03.mid", 3) == records.shard_of("piece03.mid", 3)


def test_shard_counts_follow_the_size_or_the_flag():
    names = {f"p{i}": "train" for i in range(1100)}
    names.update({f"v{i}": "valid" for i in range(100)})
    assert records.shard_counts(names) == {"train": 3, "valid": 1, "test": 1}  # 512 per shard
    assert records.shard_counts(names, shards=8) == {"train": 8, "valid": 8, "test": 1}
    assert records.shard_counts({"a": "train", "b": "valid"}, shards=4) == {
        "train": 1, "valid": 1, "test": 1}  # never more shards than pieces
    with pytest.raises(UserError, match="--shards"):
        records.shard_counts(names, shards=0)


def test_the_same_pieces_whatever_the_shard_count(source, sharded, tmp_path):
    out, _ = sharded
    one = tmp_path / "one"
    data.prepare(source, one, split=(1.0, 0.0, 0.0), workers=1, shards=1)
    assert sorted(records_of(one.glob("train-*"))) == sorted(records_of(out.glob("train-*")))


def single_file_folder(sharded_out, destination):
    """The folder as the format before shards wrote it: SPLIT.tfrecord, version 1,
    no lengths.json."""
    import tensorflow as tf

    destination.mkdir()
    for split in data.SPLITS:
        with tf.io.TFRecordWriter(str(destination / f"{split}.tfrecord")) as writer:
            for record in records_of(sorted(sharded_out.glob(f"{split}-*"))):
                writer.write(record)
    meta = data.load_meta(sharded_out)
    del meta["shards"]
    meta["version"] = 1
    (destination / "meta.json").write_text(json.dumps(meta))
    shutil.copy(sharded_out / "report.json", destination / "report.json")
    return destination


def test_a_folder_of_the_single_file_format_still_reads(sharded, tmp_path):
    out, report = sharded
    old = single_file_folder(out, tmp_path / "old")
    assert sorted(n for n, _, _ in data.read_pieces(old, "train")) == sorted(report["read"])
    assert sorted(data.piece_lengths(old, "train")) == sorted(data.piece_lengths(out, "train"))

    def windows(directory):
        dataset = data.make_dataset(directory, "train", window=32, batch_size=4, shuffle=False,
                                    repeat=False, transpose=False)
        return sorted(w.tobytes() for _, target in dataset.as_numpy_iterator() for w in target)

    assert windows(old) == windows(out)


def test_an_unknown_format_version_says_how_to_prepare_again(sharded, tmp_path, capsys):
    from biax_keras.app import cli

    out, _ = sharded
    future = tmp_path / "future"
    shutil.copytree(out, future)
    meta = json.loads((future / "meta.json").read_text())
    (future / "meta.json").write_text(json.dumps(dict(meta, version=99)))
    code = cli.main(["train", "--data", str(future), "--out", str(tmp_path / "run")])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"biax train: error: {future} was prepared in format version 99, this biax_keras "
        f"reads versions 1, 2; prepare it again with `biax prepare SOURCE --out {future}`"]


def test_a_missing_shard_is_named(sharded, tmp_path):
    out, _ = sharded
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "train-00001-of-00003.tfrecord").unlink()
    with pytest.raises(UserError, match="lacks train-00001-of-00003.tfrecord of its train split"):
        data.make_dataset(broken, "train")


# ----------------------------------------------------------------------------
# make_dataset over shards
# ----------------------------------------------------------------------------


def test_a_split_over_the_cache_budget_streams_from_disk(sharded, tmp_path):
    import tensorflow as tf

    out, _ = sharded
    for budget, cached in ((pipeline.CACHE_BUDGET_BYTES, True), (0, False)):
        copy = tmp_path / f"budget{budget}"
        shutil.copytree(out, copy)
        dataset = data.make_dataset(copy, "train", window=32, batch_size=4, shuffle=False,
                                    repeat=False, cache_budget_bytes=budget)
        first = [t for _, t in dataset.as_numpy_iterator()]
        for shard in copy.glob("train-*"):
            shard.unlink()
        if cached:  # the second pass comes from memory
            again = [t for _, t in dataset.as_numpy_iterator()]
            assert all((a == b).all() for a, b in zip(first, again, strict=True))
        else:  # the second pass reads the shards again
            with pytest.raises(tf.errors.NotFoundError):
                list(dataset.as_numpy_iterator())


def test_streamed_training_windows_come_from_every_shard_seeded(sharded):
    out, report = sharded
    rolls = {name: roll for name, roll, _ in data.read_pieces(out, "train")}

    def names(seed, budget):
        dataset = data.make_dataset(out, "train", window=32, batch_size=4, seed=seed,
                                    transpose=False, cache_budget_bytes=budget,
                                    shuffle_buffer_bytes=0)
        found = []
        for (inputs, target), _ in zip(dataset.as_numpy_iterator(), range(12)):
            for window in target:
                found.append(next(n for n, r in rolls.items()
                                  if any((r[s:s + 32] == window).all()
                                         for s in range(len(r) - 31))))
        return found

    streamed = names(5, 0)
    assert streamed == names(5, 0)                    # the same seed, the same stream
    assert streamed != names(6, 0)
    shards = {records.shard_of(name, 3) for name in streamed}
    assert shards == {0, 1, 2}
    assert set(streamed) == {n for n, r in rolls.items() if len(r) >= 32}


def name_of_window(window, rolls):
    """The piece a window was cut from."""
    for name, roll in rolls.items():
        for start in range(len(roll) - len(window) + 1):
            if (roll[start:start + len(window)] == window).all():
                return name
    raise AssertionError("no piece has this window")


def test_several_workers_split_the_training_stream_by_file(sharded):
    from tensorflow.python.data.experimental.ops.distribute import _AutoShardDataset

    out, _ = sharded
    rolls = {name: roll for name, roll, _ in data.read_pieces(out, "train")}
    per_worker = []
    for index in range(2):
        dataset = data.make_dataset(out, "train", window=32, batch_size=1, seed=0,
                                    transpose=False, workers=2, cache_budget_bytes=0)
        # What tf.distribute does to each worker's copy of the dataset.
        mine = _AutoShardDataset(dataset, num_workers=2, index=index)
        seen = set()
        for (inputs, target), _ in zip(mine.as_numpy_iterator(), range(40)):
            seen.add(name_of_window(target[0], rolls))
        per_worker.append(seen)
    # Two shards go to one worker, one to the other: no piece in common, none left out.
    assert per_worker[0] and per_worker[1] and not per_worker[0] & per_worker[1]
    assert per_worker[0] | per_worker[1] == {n for n, r in rolls.items() if len(r) >= 32}

    # With fewer shards than workers, every worker reads all and keeps a share.
    fewer = data.make_dataset(out, "train", window=32, batch_size=1, seed=0, workers=4)
    import tensorflow as tf

    assert (fewer.options().experimental_distribute.auto_shard_policy
            == tf.data.experimental.AutoShardPolicy.DATA)
