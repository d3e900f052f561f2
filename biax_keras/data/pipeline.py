"""`make_dataset`: a prepared split as batches for `model.fit`, in pure TensorFlow ops.

Shards are read in parallel, each piece decoded, a random window of
`window + 1` steps cut (training) or every whole window taken in order
(evaluation), transposed at random within the note range (training only),
batched and prefetched. A split small enough is kept in memory after the
first pass; a larger one streams from its shards through a shuffle buffer.
"""

import random

import numpy as np

from biax_keras.data.records import load_meta, piece_lengths, split_files
from biax_keras.errors import UserError
from biax_keras.music import representation

# make_dataset keeps a split in memory when its decoded pieces fit this; a
# larger one streams from its shards every epoch.
CACHE_BUDGET_BYTES = 2 * 2**30
# Shuffle buffer of a streamed split, and the shards read at once.
SHUFFLE_BUFFER_BYTES = 256 * 2**20
MIN_SHUFFLE_PIECES = 64
INTERLEAVE_SHARDS = 8
DEFAULT_WINDOW = 128
DEFAULT_BATCH_SIZE = 10
# Half an octave either way reaches every key once, without moving a piece
# far from the register it was written for.
DEFAULT_MAX_TRANSPOSE = 6


def _used_lengths(lengths, window):
    """Lengths of the pieces `make_dataset` cuts windows from: `window` steps or more."""
    return lengths[lengths >= window]


def usable_pieces(directory, split, window):
    """How many pieces of a prepared split `make_dataset` uses with this `window`.

    Raises:
        UserError: not a prepared folder, or no such split.
    """
    return len(_used_lengths(piece_lengths(directory, split), window))


def make_dataset(directory, split, window=DEFAULT_WINDOW, batch_size=DEFAULT_BATCH_SIZE,
                 transpose=True, seed=None, shuffle=None, repeat=None,
                 max_transpose=DEFAULT_MAX_TRANSPOSE, workers=1,
                 cache_budget_bytes=None, shuffle_buffer_bytes=None):
    """A `tf.data` pipeline of training windows from a prepared split.

    Pure TensorFlow ops: read the split's shards, parse, decode, put one
    silent step before each piece (so its first step is predicted from
    silence), then cut windows of `window` predicted steps.

    - With `shuffle`, the shards are read in a seeded random order, several
      at once (interleaved), pieces are shuffled in a buffer, and each visit
      takes one window at a random position.
    - Without, every piece is cut into consecutive whole windows, shard after
      shard in order (deterministic; for validation and evaluation).

    Memory: a split whose decoded pieces fit `cache_budget_bytes` is kept in
    memory after the first pass (small collections train as fast as from
    RAM) and shuffled whole; a larger one streams from disk every epoch
    through a shuffle buffer of about `shuffle_buffer_bytes`, so memory stays
    the same whatever the split's size.

    Pieces with fewer than `window` steps are skipped (never padded: padding
    would teach the model that music ends in silence).

    Transposition (training split only): each window is shifted by a random
    number of semitones in `[-max_transpose, max_transpose]`, narrowed so that
    every note it plays stays inside the note range.

    Randomness is stateless, derived from `seed` and the element's position in
    the stream: the same seed gives the same batches.

    Args:
        directory: a prepared folder.
        split: "train", "valid" or "test".
        window: steps predicted per window, `T`.
        batch_size: windows per batch, `B`. When repeating, every batch is
            full (static shapes); otherwise the last one may be smaller.
        transpose: random transposition; ignored outside the train split.
        seed: integer seed; None draws one at random.
        shuffle: default True for train, False otherwise.
        repeat: repeat forever; default True for train, False otherwise.
        max_transpose: largest shift in semitones.
        workers: worker processes that will read this dataset under
            `tf.distribute`; a repeating stream with at least one shard per
            worker is split between them by file, each reading only its own
            shards.
        cache_budget_bytes: keep the decoded split in memory when it fits
            (default `CACHE_BUDGET_BYTES`).
        shuffle_buffer_bytes: the shuffle buffer's size when streaming
            (default `SHUFFLE_BUFFER_BYTES`).

    Returns:
        A `tf.data.Dataset` of `(inputs, target)`, of known cardinality when
        it does not repeat: `inputs["roll"]` float32
        `(B, T, N, 2)` (the steps before the predicted ones), `inputs["beat"]`
        int32 `(B, T)` (bar positions of the predicted steps),
        `inputs["target"]` float32 `(B, T, N, 2)` (the predicted steps) and
        `target`, the same tensor.

    Raises:
        UserError: not a prepared folder, an empty split, or a window longer
            than every piece of the split.
    """
    repeat = split == "train" if repeat is None else repeat
    windows, count, by_file = _window_stream(
        directory, split, window, transpose, seed, shuffle, repeat, max_transpose, workers,
        cache_budget_bytes, shuffle_buffer_bytes)
    return _batched(windows, batch_size, repeat, count, by_file)


def make_mixed_dataset(directories, split, styles, weights=None, window=DEFAULT_WINDOW,
                       batch_size=DEFAULT_BATCH_SIZE, transpose=True, seed=None,
                       max_transpose=DEFAULT_MAX_TRANSPOSE, workers=1):
    """Several prepared datasets as one stream, each window tagged with its style.

    The train split draws each window from dataset `i` with probability
    `weights[i]` (`tf.data.Dataset.sample_from_datasets`; by default every
    dataset alike, so a large collection does not drown a small one), each
    dataset streamed as `make_dataset` streams it: memory stays what one
    dataset's stream needs, times the number of datasets. Any other split is
    every whole window of each dataset in turn, each weighted in inverse
    proportion to its dataset's windows (the weights average 1 over the
    pass), so that a weighted mean over the pass (Keras's metrics with
    sample weights, and the loss) is the mean of the datasets' means: each
    collection counts alike, whatever its size.

    Args:
        directories: prepared folders, all of one note range and resolution.
        split: "train", "valid" or "test".
        styles: for each folder, the `(S,)` weights of its style (one-hot).
        weights: for each folder, its share of the train windows (None:
            equal shares); ignored for other splits.
        window, batch_size, transpose, seed, max_transpose, workers: as for
            `make_dataset`.

    Returns:
        A `tf.data.Dataset` of `(inputs, target)` for the train split (a
        stream without end), `(inputs, target, sample_weight)` for others;
        `inputs` as `make_dataset`'s with `inputs["style"]` `(B, S)` float32.

    Raises:
        UserError: as `make_dataset`, for any of the folders; weights that
            are not positive or not one per folder.
    """
    import tensorflow as tf

    training = split == "train"
    if len(styles) != len(directories):
        raise ValueError("one style vector per dataset")
    if weights is None:
        weights = [1.0] * len(directories)
    if len(weights) != len(directories) or not all(w > 0 for w in weights):
        raise UserError(f"give one positive sampling weight per dataset ({len(directories)}), "
                        f"got {list(weights)}")
    if seed is None:
        seed = random.SystemRandom().randrange(2**62)
    passes = [_window_stream(directory, split, window, transpose, seed + index,
                             shuffle=training, repeat=training, max_transpose=max_transpose,
                             workers=workers)
              for index, directory in enumerate(directories)]
    counts = [count for _, count, _ in passes]
    # Weights with a mean of 1 over the whole pass: the weighted metrics are the mean of
    # the datasets' means, and Keras's loss (a sum over the batch) reads the same.
    total = float(sum(counts)) if not training else 0.0
    streams = []
    for (windows, count, _), style in zip(passes, styles):
        style = tf.constant(np.asarray(style, np.float32))
        weight = tf.constant(total / (len(passes) * count) if count else 1.0, tf.float32)
        streams.append(windows.map(
            lambda roll, beat, style=style, weight=weight: (
                roll, beat, {"style": style, "weight": weight}),
            num_parallel_calls=tf.data.AUTOTUNE))
    if training:
        total = float(sum(weights))
        mixed = tf.data.Dataset.sample_from_datasets(
            streams, weights=[w / total for w in weights], seed=seed,
            stop_on_empty_dataset=False)
        return _batched(mixed, batch_size, True, None)
    mixed = streams[0]
    for stream in streams[1:]:
        mixed = mixed.concatenate(stream)
    return _batched(mixed, batch_size, False, int(sum(counts)), weighted=True)


def _window_stream(directory, split, window, transpose=True, seed=None, shuffle=None,
                   repeat=None, max_transpose=DEFAULT_MAX_TRANSPOSE, workers=1,
                   cache_budget_bytes=None, shuffle_buffer_bytes=None):
    """The windows of `make_dataset`, one by one: `(roll (T + 1, N, 2) uint8, beat (T,))`.

    Returns:
        `(windows, count, by_file)`: the `tf.data.Dataset`, the number of
        windows of a finite pass (None when repeating) and whether a
        repeating stream is split between workers by file.
    """
    import tensorflow as tf

    meta = load_meta(directory)
    files = split_files(directory, split, meta)
    if window < 1:
        raise UserError(f"the window must be positive, got {window}")
    training = split == "train"
    shuffle = training if shuffle is None else shuffle
    repeat = training if repeat is None else repeat
    transpose = bool(transpose) and training and max_transpose > 0
    if seed is None:
        seed = random.SystemRandom().randrange(2**62)
    num_notes = int(meta["num_notes"])
    cache_budget_bytes = CACHE_BUDGET_BYTES if cache_budget_bytes is None else cache_budget_bytes
    shuffle_buffer_bytes = (SHUFFLE_BUFFER_BYTES if shuffle_buffer_bytes is None
                            else shuffle_buffer_bytes)

    lengths = piece_lengths(directory, split, meta)
    if not len(lengths):
        raise UserError(f"{directory} has no pieces in its {split} split; prepare it again "
                        f"from more pieces (its report.json lists the files that were "
                        f"skipped and why)")
    longest = int(lengths.max())
    if longest < window:
        raise UserError(f"window {window} is longer than every piece in {split} "
                        f"(longest {longest} steps); use --window N with N <= {longest}")
    used = _used_lengths(lengths, window)
    usable = len(used)
    # What a decoded piece holds in memory: its roll (one silent step more) and beat.
    piece_bytes = (used + 1) * num_notes * 2 + used * 4
    cached = int(piece_bytes.sum()) <= cache_budget_bytes
    by_file = repeat and workers > 1 and len(files) >= workers

    spec = {"roll": tf.io.FixedLenFeature([], tf.string),
            "beat": tf.io.VarLenFeature(tf.int64),
            "steps": tf.io.FixedLenFeature([], tf.int64)}
    def decode(record):
        features = tf.io.parse_single_example(record, spec)
        roll = tf.reshape(tf.io.decode_raw(features["roll"], tf.uint8),
                          [features["steps"], num_notes, 2])
        beat = tf.cast(tf.sparse.to_dense(features["beat"]), tf.int32)
        return representation.prepend_silence(roll), beat

    shards = tf.data.Dataset.from_tensor_slices(files)
    if by_file:
        # tf.distribute puts each worker's (index, count) in place of the hints.
        shards = shards.shard(tf.data.experimental.SHARD_HINT, tf.data.experimental.SHARD_HINT)
    if shuffle and not cached:
        shards = shards.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if shuffle and len(files) > 1:
        records = shards.interleave(
            tf.data.TFRecordDataset, cycle_length=min(len(files), INTERLEAVE_SHARDS),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        records = shards.flat_map(tf.data.TFRecordDataset)  # in order: evaluation
    pieces = (records.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
              .filter(lambda roll, beat: tf.shape(beat)[0] >= window))
    if cached:
        pieces = pieces.cache()
        buffer = usable
    else:
        mean_bytes = float(piece_bytes.mean())
        buffer = int(min(usable, max(MIN_SHUFFLE_PIECES, shuffle_buffer_bytes // mean_bytes)))

    def seeds(index):
        return tf.random.experimental.stateless_split(
            tf.stack([tf.constant(seed, tf.int64), index]), 2)

    def random_window(index, roll, beat):
        start_seed, shift_seed = tuple(tf.unstack(seeds(index)))
        start = tf.random.stateless_uniform(
            [], start_seed, minval=0, maxval=tf.shape(beat)[0] - window + 1, dtype=tf.int32)
        piece = tf.ensure_shape(roll[start:start + window + 1], [window + 1, num_notes, 2])
        if transpose:
            piece = _transposed(piece, shift_seed)
        return piece, tf.ensure_shape(beat[start:start + window], [window])

    def whole_windows(roll, beat):
        count = tf.shape(beat)[0] // window
        frames = tf.range(count)[:, None] * window + tf.range(window + 1)[None, :]
        return tf.data.Dataset.from_tensor_slices(
            (tf.gather(roll, frames), tf.reshape(beat[:count * window], [count, window])))

    def transposed_window(index, roll, beat):
        return _transposed(roll, tf.unstack(seeds(index))[1]), beat

    def _transposed(piece, shift_seed):
        # Narrow the shift so every played note stays in range: tf.roll wraps
        # around, which is then harmless because the wrapped notes are silent.
        played = tf.cast(tf.reduce_any(piece[..., 0] > 0, axis=0), tf.int32)
        lowest = tf.argmax(played, output_type=tf.int32)
        highest = num_notes - 1 - tf.argmax(tf.reverse(played, [0]), output_type=tf.int32)
        low = tf.maximum(-max_transpose, -lowest)
        high = tf.minimum(max_transpose, num_notes - 1 - highest)
        shift = tf.random.stateless_uniform([], shift_seed, minval=low, maxval=high + 1,
                                            dtype=tf.int32)
        return tf.roll(piece, shift, axis=1)

    if shuffle:
        windows = pieces.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            windows = windows.repeat()
        windows = windows.enumerate().map(
            lambda i, x: random_window(i, *x), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        windows = pieces.flat_map(whole_windows)
        if repeat:
            windows = windows.repeat()
        if transpose:
            windows = windows.enumerate().map(
                lambda i, x: transposed_window(i, *x), num_parallel_calls=tf.data.AUTOTUNE)

    count = None if repeat else (usable if shuffle else int(np.sum(used // window)))
    return windows, count, by_file


def _batched(windows, batch_size, repeat, count, by_file=False, weighted=False):
    """Windows (with `style`, `weight` where given) as batches of `(inputs, target[, weight])`."""
    import tensorflow as tf

    if batch_size < 1:
        raise UserError(f"the batch size must be positive, got {batch_size}")

    def to_model(roll, beat, extra=None):
        roll = tf.cast(roll, tf.float32)
        target = roll[:, 1:]
        inputs = {"roll": roll[:, :-1], "beat": beat, "target": target}
        if extra is None:
            return inputs, target
        if "style" in extra:
            inputs["style"] = extra["style"]
        if weighted:  # one weight per predicted step, as the loss has one value per step
            return inputs, target, extra["weight"][:, None] * tf.ones_like(beat, tf.float32)
        return inputs, target

    # A repeated stream loses nothing by dropping a last partial batch, and
    # full batches keep shapes static for model.fit and XLA.
    dataset = (windows.batch(batch_size, drop_remainder=repeat)
               .map(to_model, num_parallel_calls=tf.data.AUTOTUNE))
    if not repeat:
        # A finite pass has a length known from the pieces' lengths: telling
        # tf.data lets Keras show progress and end validation without a
        # "ran out of data" warning (tf.data checks the count as it goes).
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(-(-count // batch_size)))
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    # Under tf.distribute, a training stream with a shard for every worker is
    # split by file: each worker reads only its own shards (the hint above;
    # the FILE policy would refuse the counter that numbers the windows).
    # Otherwise (fewer shards than workers, or a finite pass whose batches
    # must line up across workers) every worker reads everything and keeps
    # its share of elements.
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.HINT if by_file
        else tf.data.experimental.AutoShardPolicy.DATA)
    return dataset.with_options(options)
