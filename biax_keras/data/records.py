"""The prepared folder on disk: sharded TFRecords, lengths, meta and report.

    train-00000-of-00003.tfrecord ...   each split as shards of tf.train.Example
    valid-00000-of-00001.tfrecord ...   records, one per piece (see split_files)
    lengths.json                        the steps of every piece, by split
    meta.json                           roll settings and shard counts (see load_meta)
    report.json                         what was read, skipped, dropped

A piece goes to the shard `shard_of(name, count)` of its split. Folders
written before shards (one `train.tfrecord` per split, format version 1)
are read too. TensorFlow is imported only by the functions that read or
write records; what the command line checks before TensorFlow starts (is
this a prepared folder, may `biax prepare` write there, at what resolution a
JSB file is read) needs only the standard library.
"""

import json
import math
import os
import zlib
from pathlib import Path

import numpy as np

from biax_keras.errors import UserError
from biax_keras.music import jsb
from biax_keras.music.jsb import steps_per_quarter_of_name as jsb_steps_per_quarter

META_FILE = "meta.json"
# Sources `biax prepare` reads in the JSB format (Boulanger-Lewandowski 2012).
JSON_SUFFIXES = jsb.SUFFIXES[:1]
PICKLE_SUFFIXES = jsb.SUFFIXES[1:]
REPORT_FILE = "report.json"
# What `biax prepare` quantizes MIDI to unless told otherwise: 16th notes.
DEFAULT_MIDI_STEPS_PER_QUARTER = 4
SPLITS = ("train", "valid", "test")
META_FORMAT = "biax_keras.data.records"
META_VERSION = 2
# Version 1 wrote one `SPLIT.tfrecord` per split; it is still read.
READABLE_VERSIONS = (1, 2)
LENGTHS_FILE = "lengths.json"
# Pieces per shard when the shard count is not given: about 100 MB of rolls
# for piano pieces of a few minutes, the size tf.data reads efficiently, and
# one shard per split for a collection the size of the Bach chorales.
PIECES_PER_SHARD = 512
MAX_SHARDS = 10_000


def _example(name, roll, beat):
    import tensorflow as tf

    feature = {
        "roll": tf.train.Feature(bytes_list=tf.train.BytesList(value=[np.ascontiguousarray(roll).tobytes()])),
        "beat": tf.train.Feature(int64_list=tf.train.Int64List(value=beat.tolist())),
        "steps": tf.train.Feature(int64_list=tf.train.Int64List(value=[roll.shape[0]])),
        "name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[name.encode("utf-8")])),
    }
    # Deterministic: map entries sorted, so a piece has the same bytes in every process.
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(
        deterministic=True)


def shard_counts(assignment, shards=None):
    """How many shards each split is written as.

    Args:
        assignment: dict name -> split, of every piece to be read.
        shards: shards of the train split (valid and test get as many, but no
            more than their pieces); None picks one shard per
            `PIECES_PER_SHARD` pieces.

    Returns:
        dict split -> shard count, at least 1 (an empty split is one empty shard).
    """
    counts = {split: 0 for split in SPLITS}
    for split in assignment.values():
        counts[split] += 1
    if shards is not None and not 1 <= shards <= MAX_SHARDS:
        raise UserError(f"--shards must be between 1 and {MAX_SHARDS}, got {shards}")
    result = {}
    for split, pieces in counts.items():
        wanted = shards if shards is not None else math.ceil(pieces / PIECES_PER_SHARD)
        result[split] = max(1, min(wanted, pieces, MAX_SHARDS))
    return result


def shard_name(split, index, count):
    """`train-00002-of-00008.tfrecord`: the name of one shard of a split."""
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def shard_of(name, count):
    """The shard a piece goes to: a stable hash of the last part of its name
    (the file name, or a JSON piece's index), so that pieces from one folder
    spread over every shard and a rerun writes the same files wherever the
    source folder lies."""
    last = name.replace("\\", "/").rsplit("/", 1)[-1]
    return zlib.crc32(last.encode("utf-8")) % count


def dataset_style(directory, meta=None):
    """The style a prepared dataset's pieces are tagged with: meta.json's `style`,
    or for a folder prepared before styles existed, the folder's name."""
    from biax_keras.style_names import style_name_of

    meta = load_meta(directory) if meta is None else meta
    return meta.get("style") or style_name_of(directory)


def load_meta(directory):
    """Read and check a prepared folder's meta.json.

    Args:
        directory: a folder written by `prepare`.

    Returns:
        dict with format, version, steps_per_quarter, lowest_pitch, num_notes,
        play_only, source and (from version 2) shards, split -> count.

    Raises:
        UserError: the folder is not a prepared dataset (of a readable version).
    """
    path = Path(directory) / "meta.json"
    if not path.is_file():
        raise UserError(f"{directory} is not a prepared dataset (no meta.json); "
                        f"run `biax prepare SOURCE --out {directory}` first")
    try:
        meta = json.loads(path.read_text())
    except ValueError as e:
        raise UserError(f"{path} is not valid JSON ({e}); prepare the dataset again") from None
    if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
        raise UserError(f"{directory} is not a biax_keras prepared dataset "
                        f"(meta.json has no format {META_FORMAT!r})")
    if meta.get("version") not in READABLE_VERSIONS:
        raise UserError(f"{directory} was prepared in format version {meta.get('version')}, "
                        f"this biax_keras reads versions {', '.join(map(str, READABLE_VERSIONS))}; "
                        f"prepare it again with `biax prepare SOURCE --out {directory}`")
    return meta


def split_files(directory, split, meta=None):
    """The TFRecord files of a prepared split, in shard order.

    Args:
        directory: a prepared folder.
        split: "train", "valid" or "test".
        meta: its meta (read when None).

    Returns:
        list of str paths: the split's shards, or its one file in a folder of
        format version 1.

    Raises:
        UserError: an unknown split, or a file of the split missing.
    """
    if split not in SPLITS:
        raise UserError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    meta = load_meta(directory) if meta is None else meta
    if meta["version"] == 1:
        names = [f"{split}.tfrecord"]
    else:
        count = meta.get("shards", {}).get(split)
        if not isinstance(count, int) or count < 1:
            raise UserError(f"{directory}/meta.json lists no shards for {split}; "
                            f"prepare it again with `biax prepare SOURCE --out {directory}`")
        names = [shard_name(split, i, count) for i in range(count)]
    paths = [Path(directory) / name for name in names]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"{directory} lacks {missing[0]}"
                        f"{f' and {len(missing) - 1} more files' if len(missing) > 1 else ''} "
                        f"of its {split} split; prepare it again with "
                        f"`biax prepare SOURCE --out {directory}`")
    return [str(p) for p in paths]


def _decode_example(record, num_notes):
    feature = tf_example_features(record)
    steps = feature["steps"].int64_list.value[0]
    roll = np.frombuffer(feature["roll"].bytes_list.value[0], np.uint8)
    return (feature["name"].bytes_list.value[0].decode("utf-8"),
            roll.reshape(steps, num_notes, 2).copy(),
            np.asarray(feature["beat"].int64_list.value, np.int32))


def tf_example_features(record):
    """The feature map of a serialized tf.train.Example."""
    import tensorflow as tf

    return tf.train.Example.FromString(record).features.feature


def read_pieces(directory, split):
    """The pieces of a prepared split, in numpy (for evaluation).

    Args:
        directory: a prepared folder.
        split: "train", "valid" or "test".

    Yields:
        `(name, roll, beat)`: str, np.uint8 `(steps, num_notes, 2)`, np.int32
        `(steps,)`, shard after shard.

    Raises:
        UserError: not a prepared folder, an unknown split or a missing shard.
    """
    import tensorflow as tf

    meta = load_meta(directory)
    num_notes = meta["num_notes"]
    for record in tf.data.TFRecordDataset(split_files(directory, split, meta)).as_numpy_iterator():
        yield _decode_example(record, num_notes)


def piece_lengths(directory, split, meta=None):
    """The steps of every piece of a prepared split (np.int64, in no set order).

    Read from lengths.json; a folder without one (format version 1) is
    scanned once.
    """
    meta = load_meta(directory) if meta is None else meta
    files = split_files(directory, split, meta)
    index = Path(directory) / LENGTHS_FILE
    if index.is_file():
        try:
            return np.asarray(json.loads(index.read_text())[split], np.int64)
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{index} is damaged; prepare the dataset again with "
                            f"`biax prepare SOURCE --out {directory}`") from None
    import tensorflow as tf

    spec = {"steps": tf.io.FixedLenFeature([], tf.int64)}
    lengths = (tf.data.TFRecordDataset(files)
               .map(lambda r: tf.io.parse_single_example(r, spec)["steps"])
               .batch(4096))
    return np.concatenate([np.zeros(0, np.int64)] + [b.numpy() for b in lengths])


def steps_per_quarter_of(source, steps_per_quarter=None, is_jsb=None):
    """The time resolution to prepare `source` at: the one given, else its own.

    MIDI has its own tempo and meter and is quantized to 16th notes unless
    told otherwise; a JSB-format file was quantized when it was made, and
    only its name (or the user) says to what.

    Args:
        source: what `biax prepare` reads.
        steps_per_quarter: `--steps-per-quarter`, or None.
        is_jsb: whether `source` is a JSB-format file (None: judged by its name).

    Returns:
        int, steps per quarter note.

    Raises:
        UserError: a JSB-format file whose name does not say its resolution,
            and none was given.
    """
    if steps_per_quarter is not None:
        return int(steps_per_quarter)
    if is_jsb is None:
        is_jsb = jsb.is_jsb_file(source)
    if not is_jsb:
        return DEFAULT_MIDI_STEPS_PER_QUARTER
    found = jsb_steps_per_quarter(source)
    if found is None:
        raise UserError(f"{source} does not say its time resolution (its name has neither "
                        f"'quarter' nor '16th'); give it with --steps-per-quarter "
                        f"(1 for quarter notes, 4 for 16th notes)")
    return found


def is_prepared(folder):
    """Whether `folder` holds a prepared dataset (its meta.json)."""
    return os.path.isfile(os.path.join(folder, META_FILE))


def describe(folder):
    """A few words on what a prepared folder holds, e.g. "350 pieces from bach"."""
    pieces, source = None, None
    try:
        with open(os.path.join(folder, REPORT_FILE)) as f:
            report = json.load(f)
        pieces = sum(int(n) for n in report.get("pieces", {}).values())
        source = report.get("source")
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    if source is None:
        try:
            with open(os.path.join(folder, META_FILE)) as f:
                source = json.load(f).get("source")
        except (OSError, ValueError, AttributeError):
            pass
    words = f"{pieces} pieces" if pieces is not None else "a prepared dataset"
    return words + (f" from {source}" if source else "")


def check_out(out, overwrite=False):
    """Whether `biax prepare` may write a dataset to `out`.

    Raises:
        UserError: `out` is a file, a folder of other files, or (without
            `overwrite`) a prepared dataset, named with what it holds.
    """
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out} is a file; give a folder")
    if not os.path.isdir(out) or not os.listdir(out):
        return
    if not is_prepared(out):
        raise UserError(f"--out {out} is a folder with other files in it; give a new or "
                        f"empty folder, or a prepared dataset to replace with --overwrite")
    if not overwrite:
        raise UserError(f"--out {out} already holds a prepared dataset ({describe(out)}), "
                        f"which runs may have been trained on; choose another --out, or add "
                        f"--overwrite to replace it")
