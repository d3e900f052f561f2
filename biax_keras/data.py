"""Sources -> prepared TFRecords -> tf.data pipelines.

`prepare` reads a source (a MIDI folder or file, a TFRecord of NoteSequence
protos, `bach` from music21's corpus, or a JSB-format JSON/pickle) into state
rolls, splits them by piece and writes a *prepared folder*:

    train-00000-of-00003.tfrecord ...   each split as shards of tf.train.Example
    valid-00000-of-00001.tfrecord ...   records, one per piece (see split_files)
    lengths.json                        the steps of every piece, by split
    meta.json                           roll settings and shard counts (see load_meta)
    report.json                         what was read, skipped, dropped

Writing streams: each piece goes to its shard as soon as it is read, so the
memory `prepare` needs does not grow with the collection. `biax_keras.beam`
runs the same per-file conversion as an Apache Beam pipeline.

`make_dataset` turns a prepared split into batches for `model.fit` with pure
TensorFlow ops, streaming from the shards (kept in memory only when the split
is small); `read_pieces` gives the pieces back in numpy. Folders written
before shards (one `train.tfrecord` per split, format version 1) are read too.

TensorFlow is imported only inside the functions that need it: the worker
processes of `prepare` import this module and must stay light.
"""

import concurrent.futures
import contextlib
import json
import logging
import math
import multiprocessing
import os
import pickle
import random
import re
import shutil
import signal
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from biax_keras import prepared, representation
from biax_keras.errors import UserError

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
META_FORMAT = "biax_keras.prepared"
META_VERSION = 2
# Version 1 wrote one `SPLIT.tfrecord` per split; it is still read.
READABLE_VERSIONS = (1, 2)
LENGTHS_FILE = "lengths.json"
# Pieces per shard when the shard count is not given: about 100 MB of rolls
# for piano pieces of a few minutes, the size tf.data reads efficiently, and
# one shard per split for a collection the size of the Bach chorales.
PIECES_PER_SHARD = 512
MAX_SHARDS = 10_000
# make_dataset keeps a split in memory when its decoded pieces fit this; a
# larger one streams from its shards every epoch.
CACHE_BUDGET_BYTES = 2 * 2**30
# Shuffle buffer of a streamed split, and the shards read at once.
SHUFFLE_BUFFER_BYTES = 256 * 2**20
MIN_SHUFFLE_PIECES = 64
INTERLEAVE_SHARDS = 8
BACH = "bach"
MIDI_SUFFIXES = representation.MIDI_SUFFIXES
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords")
JSON_SUFFIXES, PICKLE_SUFFIXES = prepared.JSON_SUFFIXES, prepared.PICKLE_SUFFIXES
# The JSB format (Boulanger-Lewandowski 2012) holds MIDI pitches of the 88 piano keys.
JSB_LOWEST_PITCH, JSB_NUM_NOTES = 21, 88
JSB_HIGHEST_PITCH = JSB_LOWEST_PITCH + JSB_NUM_NOTES - 1

DEFAULT_SPLIT = (0.8, 0.1, 0.1)
DEFAULT_WINDOW = 128
DEFAULT_BATCH_SIZE = 10
# Half an octave either way reaches every key once, without moving a piece
# far from the register it was written for.
DEFAULT_MAX_TRANSPOSE = 6
# Per-file limits in the worker processes: a backstop behind the checks in
# representation.read_midi, so that no single file can hang or swamp a run.
FILE_TIMEOUT_S = 60
WORKER_MEMORY_BYTES = 3 * 2**30
# Below this many pieces a process pool costs more than it saves.
_MIN_TASKS_FOR_POOL = 8
_CHUNK_SIZE = 8


# ----------------------------------------------------------------------------
# Reading one piece (runs in worker processes)
# ----------------------------------------------------------------------------


_worker_timeout_s = None  # set in worker processes only


class _FileTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _FileTimeout()


def _init_worker(timeout_s):
    """Bound what one file may cost in a worker: wall time and address space."""
    signal.signal(signal.SIGALRM, _on_alarm)
    global _worker_timeout_s
    _worker_timeout_s = timeout_s
    try:
        import resource

        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        limit = vm + WORKER_MEMORY_BYTES
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    except (ImportError, OSError, ValueError, StopIteration):
        pass  # not Linux: the checks in read_midi still bound each file


def _read_piece(kind, payload, settings):
    """One piece -> `(roll, beat, notes_dropped)`; raises RepresentationError."""
    spq, lowest, num_notes, max_steps = settings
    if kind == "midi":
        ns = representation.read_midi(payload, spq, max_steps=max_steps)
    elif kind == "note_sequence":
        from google.protobuf.message import DecodeError
        from note_seq.protobuf import music_pb2

        try:
            ns = music_pb2.NoteSequence.FromString(payload)
        except DecodeError as e:
            raise representation.InvalidSequenceError(f"not a NoteSequence proto ({e})") from None
    elif kind == "music21":
        ns = _music21_file_to_note_sequence(payload)
    elif kind == "pitch_sets":
        if payload is None:
            raise representation.InvalidSequenceError("not a list of steps of MIDI pitches")
        return tuple(representation.pitch_sets_to_roll(
            payload, spq, lowest, num_notes, max_steps=max_steps))
    else:
        raise ValueError(f"unknown piece kind {kind!r}")
    return tuple(representation.note_sequence_to_roll(ns, spq, lowest, num_notes,
                                                      max_steps=max_steps))


def _read_task(task, settings):
    """Read one task `(index, name, kind, payload)`; never raises for a bad file.

    Returns:
        `(index, name, (roll, beat, dropped))` or `(index, name, reason)`.
    """
    index, name, kind, payload = task
    if _worker_timeout_s:
        signal.setitimer(signal.ITIMER_REAL, _worker_timeout_s)
    try:
        return index, name, _read_piece(kind, payload, settings)
    # The library's messages name no flags; these are `biax prepare`'s.
    except representation.TooLongError as e:
        return index, name, f"{e} (raise --max-steps to keep it)"
    except representation.OutOfRangeError as e:
        return index, name, f"{e}; widen it with --lowest-pitch/--num-notes"
    except representation.RepresentationError as e:
        return index, name, str(e)
    except _FileTimeout:
        return index, name, f"took longer than {_worker_timeout_s:g} s to read"
    except MemoryError:
        return index, name, "ran out of memory while reading it"
    except OSError as e:
        return index, name, f"cannot read it ({e.strerror or e})"
    except Exception as e:  # a parser's bug on a strange file must not stop the run
        return index, name, f"unreadable ({type(e).__name__}: {e})"
    finally:
        if _worker_timeout_s:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _read_chunk(tasks, settings):
    results = []
    for task in tasks:
        try:
            results.append(_read_task(task, settings))
        except _FileTimeout:  # the alarm went off just as the task returned
            results.append((task[0], task[1], f"took longer than {_worker_timeout_s:g} s to read"))
    return results


# ----------------------------------------------------------------------------
# music21's Bach chorales
# ----------------------------------------------------------------------------


def bach_chorale_paths():
    """Every Bach chorale in music21's corpus, by name.

    Follows music21's chorale catalogue (Riemenschneider's 371 numbers); the
    numbers that name the same file are read once, which leaves 350 chorales.

    Returns:
        dict `"bach/bwv269" -> Path` of the score file (None where the
        corpus lacks it), sorted by name.

    Raises:
        UserError: music21 or its corpus is missing.
    """
    try:
        from music21 import corpus
        from music21.corpus import chorales
    except ImportError:
        raise UserError("the `bach` source needs music21: pip install music21") from None
    folders = {p.parent for p in corpus.getComposer("bach")}
    names = sorted(set(chorales.Iterator(returnType="filename")))
    if not folders or not names:
        raise UserError("music21's corpus has no Bach chorales; reinstall music21")
    paths = {}
    for name in names:
        stem = name.split("/")[-1]
        exact = [folder / (stem + suffix) for folder in sorted(folders)
                 for suffix in (".mxl", ".xml", ".musicxml", ".krn")]
        exact = [p for p in exact if p.is_file()]
        if exact:
            paths[name] = exact[0]
            continue
        # A few catalogue names are a prefix of their file's (bwv18.5-l -> bwv18.5-lz).
        match = corpus.getWork(name)
        paths[name] = Path(match) if match and not isinstance(match, list) else None
    return paths


def _music21_play_order(part, measures):
    """Indices into `measures` in playing order, repeats expanded.

    Only this one part is expanded by music21 (which deep-copies everything
    it expands); the other parts follow the same order.
    """
    from music21 import bar, repeat

    if not any(True for _ in part.recurse().getElementsByClass((bar.Repeat, repeat.RepeatMark))):
        return list(range(len(measures)))
    index_of = {id(m): i for i, m in enumerate(measures)}
    try:
        expanded = part.expandRepeats()
        return [index_of[id(m.derivation.rootDerivation)] for m in expanded.getElementsByClass("Measure")]
    except Exception as e:  # music21 raises its own kinds for odd repeat marks
        log.info("repeats not expanded (%s: %s)", type(e).__name__, e)
        return list(range(len(measures)))


def _music21_file_to_note_sequence(path):
    """Parse a score with music21 and write its notes into a NoteSequence.

    Goes straight from the score's offsets in quarter notes to times at 120 qpm
    (no MIDI round trip) and gives the notes a MIDI rendering of the score
    would: repeats played out, tied notes merged, grace notes skipped. A
    pickup bar becomes a time signature before time 0, so bar positions stay
    right.
    """
    from music21 import converter, meter, stream
    from note_seq.protobuf import music_pb2

    # forceSource: music21's pickle cache is slower to load than the score itself.
    score = converter.parse(str(path), forceSource=True)
    parts = list(score.parts) or [score]
    measures = [list(p.getElementsByClass(stream.Measure)) for p in parts]
    if not measures[0] or any(len(m) != len(measures[0]) for m in measures):
        raise representation.InvalidSequenceError("parts without measures, or of unequal length")
    order = _music21_play_order(parts[0], measures[0])

    seconds_per_quarter = 60.0 / representation.DEFAULT_QPM
    ns = music_pb2.NoteSequence()
    ns.filename = str(path)
    ns.ticks_per_quarter = representation.WRITE_TICKS_PER_QUARTER
    ns.tempos.add(time=0.0, qpm=representation.DEFAULT_QPM)

    notes = []  # [pitch, start, end, instrument] in quarters
    open_ties = [{} for _ in parts]  # per part: pitch -> index in notes
    meter_in_force = None
    cursor = -float(measures[0][order[0]].paddingLeft or 0.0)  # a pickup starts mid-bar
    for position, i in enumerate(order):
        first = measures[0][i]
        for ts in first.getElementsByClass(meter.TimeSignature):
            # Only changes: a repeated pickup bar must not move the bar line.
            if (ts.numerator, ts.denominator) != meter_in_force:
                meter_in_force = (ts.numerator, ts.denominator)
                time = cursor + float(ts.offset) if position else cursor
                ns.time_signatures.add(time=time * seconds_per_quarter,
                                       numerator=ts.numerator, denominator=ts.denominator)
        if position == 0:
            cursor = 0.0
        for instrument, part_measures in enumerate(measures):
            _collect_notes(part_measures[i], cursor, instrument, notes, open_ties[instrument])
        cursor += max(float(m[i].duration.quarterLength) for m in measures)
    for pitch, start, end, instrument in notes:
        ns.notes.add(pitch=pitch, velocity=representation.DEFAULT_VELOCITY,
                     start_time=start * seconds_per_quarter, end_time=end * seconds_per_quarter,
                     instrument=instrument)
    ns.total_time = max((n.end_time for n in ns.notes), default=0.0)
    return ns


def _collect_notes(measure, offset, instrument, notes, open_ties):
    """Append a measure's notes to `notes`, merging tied notes into one."""
    for element in measure.flatten().notes:
        length = float(element.quarterLength)
        if length <= 0:
            continue  # grace notes take their time from their neighbours
        start = offset + float(element.offset)
        members = element.notes if element.isChord else [element]
        for member in members:
            pitch = member.pitch.midi
            tie = member.tie.type if member.tie is not None else None
            held = open_ties.get(pitch)
            if tie in ("stop", "continue") and held is not None and abs(notes[held][2] - start) < 1e-6:
                notes[held][2] = start + length
                if tie == "stop":
                    del open_ties[pitch]
                continue
            notes.append([pitch, start, start + length, instrument])
            if tie in ("start", "continue"):
                open_ties[pitch] = len(notes) - 1
            else:
                open_ties.pop(pitch, None)


# ----------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------


class _Source:
    """What to read: tasks `(index, name, kind, payload)` and how to split them."""

    def __init__(self, label, tasks, own_split=None, play_only=False, skipped=(),
                 parallel=True):
        self.label = label
        self.parallel = parallel  # worth worker processes (parsing, not just copying)
        self.tasks = tasks
        self.own_split = own_split  # name -> split, or None to split by seed
        self.play_only = play_only
        self.skipped = list(skipped)  # found while listing: [{"path", "reason"}]


def _sniff(path):
    """Guess what a file is from its suffix, then from its first bytes."""
    suffix = path.suffix.lower()
    for kind, suffixes in (("midi", MIDI_SUFFIXES), ("tfrecord", TFRECORD_SUFFIXES),
                           ("json", JSON_SUFFIXES), ("pickle", PICKLE_SUFFIXES)):
        if suffix in suffixes:
            return kind
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:4] == b"MThd":
        return "midi"
    if head.lstrip()[:1] == b"{":
        return "json"
    if head[:1] == b"\x80":
        return "pickle"
    if len(head) >= 12 and int.from_bytes(head[:8], "little") + 16 <= path.stat().st_size:
        return "tfrecord"  # the length field of a first record fits the file
    return None


def _midi_folder(folder):
    files = sorted(p for p in folder.rglob("*")
                   if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())
    if not files:
        raise UserError(f"no MIDI files (.mid/.midi) under {folder}")
    tasks = [(i, str(p), "midi", str(p)) for i, p in enumerate(files)]
    return _Source(str(folder), tasks)


def _bach(limit):
    paths = bach_chorale_paths()
    names = sorted(paths)[:limit] if limit else sorted(paths)
    tasks = [(i, name, "music21", str(paths[name])) for i, name in enumerate(names) if paths[name]]
    missing = [{"path": name, "reason": "not found in music21's corpus"}
               for name in names if not paths[name]]
    return _Source(BACH, tasks, skipped=missing)


def _check_jsb_pitches(path, piece, steps):
    """Refuses a JSB-format file whose pitches leave the piano's 88 keys.

    The format stores MIDI pitches 21..108. A pitch outside them is not a
    note too high or too low for the model (those are dropped and counted):
    it means the file holds something else, most often key indices 0..87,
    which read as MIDI pitches would put every piece a few octaves off.
    """
    for step, pitches in enumerate(steps):
        for pitch in pitches:
            if (isinstance(pitch, (int, float, np.integer, np.floating))
                    and not JSB_LOWEST_PITCH <= pitch <= JSB_HIGHEST_PITCH):
                raise UserError(
                    f"{path}: piece {piece} step {step} has pitch {pitch!r}, outside "
                    f"the JSB format's MIDI pitches {JSB_LOWEST_PITCH}..{JSB_HIGHEST_PITCH}; "
                    f"write MIDI pitch numbers (middle C is 60), not key indices")


def _jsb(path, kind):
    try:
        if kind == "json":
            with open(path) as f:
                content = json.load(f)
        else:
            # A pickle can run code: only files the user names explicitly get here.
            with open(path, "rb") as f:
                content = pickle.load(f, encoding="latin1")
    except (ValueError, pickle.UnpicklingError, EOFError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not a readable JSB {kind} file ({e})") from None
    if not isinstance(content, dict) or not any(k in content for k in SPLITS):
        raise UserError(f"{path} is not in the JSB format: expected a dict with "
                        f"some of the keys {', '.join(SPLITS)}")
    tasks, own_split = [], {}
    for split in SPLITS:
        pieces = content.get(split, [])
        if not isinstance(pieces, (list, tuple)):
            raise UserError(f"{path}: {split!r} should be a list of pieces")
        for number, piece in enumerate(pieces):
            name = f"{path}:{split}/{number}"
            try:
                steps = [list(step) for step in piece]
            except TypeError:
                steps = None
            if steps is not None:
                _check_jsb_pitches(path, f"{split}/{number}", steps)
            tasks.append((len(tasks), name, "pitch_sets", steps))
            own_split[name] = split
    return _Source(str(path), tasks, own_split=own_split, play_only=True, parallel=False)


def _note_sequence_records(path):
    import tensorflow as tf

    tasks = []
    try:
        for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            tasks.append((len(tasks), f"{path}#{len(tasks)}", "note_sequence", record))
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        if not tasks:
            raise UserError(f"{path} is not a TFRecord file ({e.message.splitlines()[0]})") from None
        log.warning("%s: stopped at a corrupt record after %d records", path, len(tasks))
        return _Source(str(path), tasks, skipped=[
            {"path": f"{path}#{len(tasks)}", "reason": "corrupt TFRecord; the rest of the file is lost"}])
    return _Source(str(path), tasks)


def _find_source(source, limit):
    if str(source) == BACH:
        return _bach(limit)
    path = Path(source)
    if not path.exists():
        raise UserError(
            f"{source} does not exist (give a MIDI folder or file, a .tfrecord of "
            f"NoteSequences, a JSB .json/.pickle, or `bach`)")
    if path.is_dir():
        found = _midi_folder(path)
    else:
        kind = _sniff(path)
        if kind == "midi":
            found = _Source(str(path), [(0, str(path), "midi", str(path))])
        elif kind == "tfrecord":
            found = _note_sequence_records(path)
        elif kind in ("json", "pickle"):
            found = _jsb(path, kind)
        else:
            raise UserError(f"{source} is neither MIDI, a TFRecord of NoteSequences, "
                            f"nor a JSB .json/.pickle file")
    if limit:
        found.tasks = found.tasks[:limit]
    if not found.tasks:
        raise UserError(f"{source} holds no pieces")
    return found


# ----------------------------------------------------------------------------
# Splitting, reading in parallel, writing
# ----------------------------------------------------------------------------


def _check_fractions(split):
    if isinstance(split, str):
        try:
            split = tuple(float(x) for x in split.split(","))
        except ValueError:
            raise UserError(f"--split must be three fractions like 0.8,0.1,0.1, "
                            f"got {split!r}") from None
    fractions = tuple(float(x) for x in split)
    if (len(fractions) != 3 or any(not math.isfinite(f) or f < 0 for f in fractions)
            or abs(sum(fractions) - 1.0) > 1e-6 or fractions[0] <= 0):
        raise UserError(f"split must be three fractions train,valid,test that add up to 1 "
                        f"with train > 0, got {','.join(map(str, split))}")
    return fractions


def assign_splits(names, fractions=DEFAULT_SPLIT, seed=0):
    """Assign pieces to train/valid/test by a seeded shuffle of their names.

    A piece's split depends only on the seed and the set of names, not on the
    order they were listed or on which other files turn out unreadable.

    Args:
        names: piece names (unique).
        fractions: `(train, valid, test)` adding up to 1.
        seed: integer seed.

    Returns:
        dict name -> "train" | "valid" | "test".
    """
    names = sorted(names)
    n = len(names)
    counts = [int(round(n * f)) for f in fractions[1:]]
    if n >= 3:
        # Small collections still get a piece to validate and test on.
        counts = [max(c, 1) if f > 0 else 0 for c, f in zip(counts, fractions[1:])]
    n_valid, n_test = counts
    n_test = min(n_test, max(n - 1, 0))
    n_valid = min(n_valid, max(n - 1 - n_test, 0))
    order = np.random.default_rng(seed).permutation(n)
    result = {}
    for rank, i in enumerate(order):
        result[names[i]] = "test" if rank < n_test else "valid" if rank < n_test + n_valid else "train"
    return result


def _default_workers():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _read_all(tasks, settings, workers, timeout_s):
    """Yield `_read_task` results in task order, in parallel when it pays.

    A worker process that dies (killed by the OS) breaks the pool. The run
    then goes on in a fresh pool with one chunk in flight at a time, chunks
    split to single tasks, so that the task that kills its worker is known and
    reported as skipped.
    """
    if workers <= 1 or len(tasks) < _MIN_TASKS_FOR_POOL:
        for task in tasks:
            yield _read_task(task, settings)
        return
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: the caller may have TensorFlow's threads running.
    context = multiprocessing.get_context("spawn")
    size = max(1, min(_CHUNK_SIZE, len(tasks) // (workers * 4)))
    queue = [tasks[i:i + size] for i in range(0, len(tasks), size)]
    order = [task[0] for task in tasks]
    done, next_index = {}, 0
    max_in_flight = 2 * workers
    while queue:
        pool = concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(timeout_s,))
        in_flight, broken = [], False
        try:
            while (queue or in_flight) and not broken:
                while queue and len(in_flight) < max_in_flight:
                    chunk = queue.pop(0)
                    in_flight.append((chunk, pool.submit(_read_chunk, chunk, settings)))
                chunk, future = in_flight.pop(0)
                try:
                    results = future.result()
                except BrokenProcessPool:
                    broken = True
                    if max_in_flight == 1 and len(chunk) == 1:
                        results = [(chunk[0][0], chunk[0][1], "crashed the process reading it")]
                    else:
                        results = []
                        queue = [[task] for task in chunk] + [c for c, _ in in_flight] + queue
                    max_in_flight = 1
                for result in results:
                    done[result[0]] = result
                while next_index < len(order) and order[next_index] in done:
                    yield done.pop(order[next_index])
                    next_index += 1
        finally:
            # On an error or Ctrl-C downstream, do not wait for queued chunks.
            pool.shutdown(wait=True, cancel_futures=True)


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


def _replace_folder(new, out):
    """Put folder `new` at `out`, replacing a previous dataset there."""
    if not out.exists():
        os.rename(new, out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    os.rename(out, old)
    try:
        os.rename(new, out)
    except OSError:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


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
    """The shard a piece goes to: a stable hash of its name, so that pieces from
    one folder spread over every shard and a rerun writes the same files."""
    return zlib.crc32(name.encode("utf-8")) % count


class _Plan:
    """Everything `prepare` decided before reading: what, how, where to."""

    def __init__(self, source, out, found, assignment, settings, shards, timeout_s, meta,
                 overwrite=False, fractions=DEFAULT_SPLIT, seed=0, requested_shards=None):
        self.source = source
        self.requested_shards = requested_shards
        self.fractions = fractions
        self.seed = seed
        self.overwrite = overwrite
        self.out = out
        self.found = found
        self.assignment = assignment
        self.settings = settings
        self.shards = shards
        self.timeout_s = timeout_s
        self.meta = meta


def plan(source, out, *, steps_per_quarter=None,
         lowest_pitch=representation.DEFAULT_LOWEST_PITCH,
         num_notes=representation.DEFAULT_NUM_NOTES, split=DEFAULT_SPLIT, seed=0,
         max_steps=representation.DEFAULT_MAX_STEPS, limit=None, timeout_s=FILE_TIMEOUT_S,
         shards=None, overwrite=False):
    """Check the settings, list the source and split it: what `prepare` and the
    Beam pipeline share before reading (arguments as for `prepare`)."""
    fractions = _check_fractions(split)
    steps_per_quarter = prepared.steps_per_quarter_of(source, steps_per_quarter,
                                                      jsb=_is_jsb(source))
    if steps_per_quarter < 1 or max_steps < 1:
        raise UserError("--steps-per-quarter and --max-steps must be positive")
    if num_notes < 1 or lowest_pitch < 0 or lowest_pitch + num_notes > representation.NUM_MIDI_PITCHES:
        raise UserError(f"the note range --lowest-pitch {lowest_pitch} --num-notes {num_notes} "
                        f"must lie within MIDI pitches 0..127")
    if shards is not None and not 1 <= shards <= MAX_SHARDS:
        raise UserError(f"--shards must be between 1 and {MAX_SHARDS}, got {shards}")
    out = Path(out).absolute()
    prepared.check_out(out, overwrite)
    found = _find_source(source, limit)
    names = [task[1] for task in found.tasks]
    assignment = found.own_split or assign_splits(names, fractions, seed)
    counts = shard_counts(assignment, shards)
    meta = {"format": META_FORMAT, "version": META_VERSION,
            "steps_per_quarter": steps_per_quarter, "lowest_pitch": lowest_pitch,
            "num_notes": num_notes, "play_only": found.play_only, "source": str(source),
            "shards": counts}
    return _Plan(source, out, found, assignment,
                 (steps_per_quarter, lowest_pitch, num_notes, max_steps), counts, timeout_s, meta,
                 overwrite, fractions, seed, shards)


def _is_jsb(source):
    """Whether `biax prepare` reads `source` as a JSB-format file."""
    path = Path(str(source))
    return (str(source) != BACH and path.is_file()
            and _sniff(path) in ("json", "pickle"))


def check_request(source, steps_per_quarter=None, split=DEFAULT_SPLIT):
    """What `plan` refuses that costs nothing to find out, for the command line
    to say before TensorFlow starts: the split, the resolution of a JSB file,
    a folder without MIDI files.

    Raises:
        UserError: for any of these.
    """
    _check_fractions(split)
    prepared.steps_per_quarter_of(source, steps_per_quarter, jsb=_is_jsb(source))
    if str(source) != BACH and Path(source).is_dir():
        _midi_folder(Path(source))


def new_report(plan):
    """An empty report for `plan`, to be filled by `add_outcome`."""
    return {"read": [], "skipped": list(plan.found.skipped), "notes_dropped": 0,
            "pieces": dict.fromkeys(SPLITS, 0), "steps": dict.fromkeys(SPLITS, 0),
            "seconds": 0.0, "source": str(plan.source), "notes_dropped_by_piece": {}}


def rebalance(plan, staging, report, lengths):
    """Split again among the pieces read, when skipped files emptied valid or test.

    Splits are chosen before reading, so that pieces are written as they are
    read; a collection in which many files cannot be used may then leave a
    split empty that its fractions ask for (22 files, 6 usable: 6 / 0 / 0).
    Then the pieces that were read get `assign_splits` of their own names
    (deterministic: the seed and the readable pieces decide), and the shards
    in `staging` are written again. Sources with their own split keep it.
    A split that stays empty (too few pieces) is warned about.
    """
    read = report["read"]
    if plan.found.own_split is None and read:
        wanted = assign_splits(read, plan.fractions, plan.seed)
        counts = {split: report["pieces"][split] for split in SPLITS}
        emptied = [split for split, fraction in zip(SPLITS, plan.fractions)
                   if fraction > 0 and not counts[split]
                   and any(s == split for s in wanted.values())]
        if emptied:
            log.warning("%d of %d pieces could not be read, which left %s empty: splitting "
                        "the %d pieces read again", len(report["skipped"]),
                        len(report["skipped"]) + len(read), " and ".join(emptied), len(read))
            _rewrite_shards(plan, staging, wanted)
            steps = report.pop("_steps")
            for split in SPLITS:
                chosen = [steps[name] for name in read if wanted[name] == split]
                report["pieces"][split] = len(chosen)
                report["steps"][split] = int(sum(chosen))
                lengths[split] = chosen
    report.pop("_steps", None)
    if plan.found.own_split is not None:
        return  # the source's own split, as it is
    needs = {"valid": "`biax train` validates on it", "test": "nothing is held out to test on"}
    for split, fraction in zip(SPLITS, plan.fractions):
        if fraction > 0 and not report["pieces"][split] and read:
            log.warning("warning: the %s split is empty: only %d piece(s) could be read, and %s; "
                        "prepare more pieces%s", split, len(read), needs[split],
                        " (report.json lists those skipped)" if report["skipped"] else "")


def _rewrite_shards(plan, staging, assignment):
    """Write the records in `staging` again into the shards of `assignment`."""
    import tensorflow as tf

    old = sorted(p for p in staging.iterdir() if p.name.endswith(".tfrecord"))
    counts = shard_counts(assignment, plan.requested_shards)
    plan.shards = counts
    plan.meta["shards"] = counts
    moved = staging / ".resplit"
    moved.mkdir()
    with contextlib.ExitStack() as stack:
        writers = {split: [stack.enter_context(tf.io.TFRecordWriter(
            str(moved / shard_name(split, i, count)))) for i in range(count)]
            for split, count in counts.items()}
        for path in old:
            for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
                name = tf_example_features(record)["name"].bytes_list.value[0].decode("utf-8")
                shard = writers[assignment[name]]
                shard[shard_of(name, len(shard))].write(record)
    for path in old:
        path.unlink()
    for path in moved.iterdir():
        os.rename(path, staging / path.name)
    moved.rmdir()


def add_outcome(report, lengths, name, split, outcome):
    """Count one piece in the report: `outcome` is a skip reason (str) or
    `(steps, notes_dropped)` of a piece written to `split`."""
    if isinstance(outcome, str):
        report["skipped"].append({"path": name, "reason": outcome})
        return
    steps, dropped = outcome
    report.setdefault("_steps", {})[name] = int(steps)  # for `rebalance`; not written
    report["read"].append(name)
    report["pieces"][split] += 1
    report["steps"][split] += int(steps)
    lengths[split].append(int(steps))
    report["notes_dropped"] += dropped
    if dropped:
        report["notes_dropped_by_piece"][name] = dropped


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # alive, but another user's
        return True
    return True


def remove_stale_staging(out):
    """Remove what a `prepare` into `out` that was killed outright (kill -9, a
    power cut) left beside it: `.NAME.tmp-PID-*` and `.NAME.old-PID` folders
    whose process is gone. A run that is still going keeps its own."""
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(tmp|old)-(\d+)(-.*)?$")
    if not out.parent.is_dir():
        return
    for path in out.parent.iterdir():
        match = pattern.match(path.name)
        if match and path.is_dir() and not _pid_alive(int(match.group(2))):
            log.info("removing %s, left by a prepare that was killed", path)
            shutil.rmtree(path, ignore_errors=True)


def staging_folder(out):
    """A new temporary folder beside `out`, with the permissions a user expects.

    Its name carries this process's id, so that a later run can tell a
    leftover of a killed run from the folder of a run still going.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 is not what a user expects
    return staging


def finish(plan, staging, report, lengths, started):
    """Write meta, lengths and report into `staging`, then put it at `plan.out`.

    Raises:
        UserError: not one piece was read (`staging` is left for the caller).
    """
    if not report["read"]:
        first_skip = report["skipped"][0] if report["skipped"] else None
        reason = f" (first: {first_skip['path']}: {first_skip['reason']})" if first_skip else ""
        raise UserError(f"no piece in {plan.source} could be read: "
                        f"{len(report['skipped'])} skipped{reason}")
    report.pop("_steps", None)
    (staging / "meta.json").write_text(json.dumps(plan.meta, indent=2) + "\n")
    (staging / LENGTHS_FILE).write_text(
        json.dumps({split: sorted(lengths[split]) for split in SPLITS}) + "\n")
    report["seconds"] = round(time.perf_counter() - started, 3)
    (staging / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    prepared.check_out(plan.out, plan.overwrite)  # someone may have put files there meanwhile
    _replace_folder(staging, plan.out)


def prepare(source, out, *, steps_per_quarter=None,
            lowest_pitch=representation.DEFAULT_LOWEST_PITCH,
            num_notes=representation.DEFAULT_NUM_NOTES, split=DEFAULT_SPLIT, seed=0,
            workers=None, max_steps=representation.DEFAULT_MAX_STEPS, limit=None,
            timeout_s=FILE_TIMEOUT_S, shards=None, overwrite=False):
    """Read a source into sharded train/valid/test TFRecords, a report and meta.json.

    Sources: a folder of MIDI files (searched recursively, .mid/.midi in any
    case), one MIDI file, a TFRecord of `NoteSequence` protos (Magenta's
    format), `"bach"` (the chorales in music21's corpus) or a JSB-format
    .json/.pickle (dict of train/valid/test, each piece a list of steps of MIDI
    pitches; its own split is kept, articulate is 0 and meta says play_only).

    Pieces are split by a seeded shuffle of their names (`assign_splits`)
    unless the source has its own split; when files that could not be read
    leave valid or test empty, the pieces that were read are split again
    (`rebalance`). Pieces are spread over each split's shards
    by a hash of their names (`shard_of`). A file that cannot be used is
    skipped with its reason in the report; it never stops the run. Pieces are
    written as they are read (memory stays bounded by the pieces in flight),
    to a temporary folder beside `out`, which then replaces `out`.

    Args:
        source: path, or `"bach"`.
        out: output folder; created (with its parents).
        steps_per_quarter: steps per quarter note (None: 4 for MIDI, and
            for a JSB-format file the resolution its name states).
        lowest_pitch: MIDI pitch of note index 0.
        num_notes: number of notes in the roll.
        split: `(train, valid, test)` fractions.
        seed: seed of the split.
        workers: parallel reader processes (default: the CPU cores available).
        max_steps: pieces longer than this many steps are skipped.
        limit: read only the first `limit` pieces (for quick runs).
        timeout_s: a file that takes longer to read is skipped.
        shards: shards of the train split (see `shard_counts`); None picks
            from the number of pieces.
        overwrite: replace a prepared dataset already in `out` (refused
            otherwise: runs may have been trained on it).

    Returns:
        The report (also written to `out/report.json`):
        `{"read": [name, ...], "skipped": [{"path", "reason"}, ...],
        "notes_dropped": int, "pieces": {split: n}, "steps": {split: n},
        "seconds": float, "source": str, "notes_dropped_by_piece": {name: n}}`.

    Raises:
        UserError: a missing or unusable source, bad settings, an `out` that
            would clobber other files or (without `overwrite`) a prepared
            dataset, or not one readable piece.
    """
    started = time.perf_counter()
    job = plan(source, out, steps_per_quarter=steps_per_quarter, lowest_pitch=lowest_pitch,
               num_notes=num_notes, split=split, seed=seed, max_steps=max_steps, limit=limit,
               timeout_s=timeout_s, shards=shards, overwrite=overwrite)
    found = job.found
    log.info("reading %d pieces from %s into %s shards", len(found.tasks), found.label,
             "/".join(str(job.shards[s]) for s in SPLITS))
    workers = min(workers or _default_workers(), len(found.tasks))
    report, lengths = new_report(job), {split: [] for split in SPLITS}

    staging = staging_folder(job.out)
    results = (r for r in ())  # a generator, so close() works before reading starts
    try:
        results = _read_all(found.tasks, job.settings, workers if found.parallel else 1, timeout_s)
        # TensorFlow (for the writers) is imported once reading is under way, so
        # its import overlaps the start of the reader processes.
        first = next(results)
        import tensorflow as tf

        with contextlib.ExitStack() as stack:
            writers = {split: [stack.enter_context(tf.io.TFRecordWriter(
                str(staging / shard_name(split, i, count)))) for i in range(count)]
                for split, count in job.shards.items()}
            progress_every = max(1, len(found.tasks) // 10)
            for count, (index, name, outcome) in enumerate(_chain(first, results), 1):
                which = job.assignment[name]
                if not isinstance(outcome, str):
                    roll, beat, dropped = outcome
                    shard = writers[which]
                    shard[shard_of(name, len(shard))].write(_example(name, roll, beat))
                    outcome = (roll.shape[0], dropped)
                add_outcome(report, lengths, name, which, outcome)
                if count % progress_every == 0:
                    log.info("  %d/%d pieces", count, len(found.tasks))
        rebalance(job, staging, report, lengths)
        finish(job, staging, report, lengths, started)
    except BaseException:
        results.close()  # stops the reader processes now, not at garbage collection
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _chain(first, rest):
    yield first
    yield from rest


def format_report(report, max_skipped=10):
    """A short human summary of a `prepare` report.

    Args:
        report: the dict `prepare` returned (or report.json).
        max_skipped: list at most this many skipped files.

    Returns:
        str, a few lines.
    """
    lines = [f"Read {len(report['read'])} pieces from {report.get('source', 'the source')}, "
             f"skipped {len(report['skipped'])}, in {report['seconds']:.1f} s."]
    for split in SPLITS:
        lines.append(f"  {split:<5} {report['pieces'][split]:>6} pieces "
                     f"{report['steps'][split]:>10,} steps")
    if report["notes_dropped"]:
        lines.append(f"  {report['notes_dropped']:,} notes outside the note range dropped "
                     f"in {len(report.get('notes_dropped_by_piece', {})) or 'some'} pieces")
    if report["skipped"]:
        lines.append("Skipped:")
        for entry in report["skipped"][:max_skipped]:
            lines.append(f"  {entry['path']}: {entry['reason']}")
        if len(report["skipped"]) > max_skipped:
            lines.append(f"  ... and {len(report['skipped']) - max_skipped} more (see report.json)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# Reading a prepared folder
# ----------------------------------------------------------------------------


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
    import tensorflow as tf

    meta = load_meta(directory)
    files = split_files(directory, split, meta)
    if window < 1 or batch_size < 1:
        raise UserError(f"window and batch size must be positive, got {window} and {batch_size}")
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
    silence = tf.zeros([1, num_notes, 2], tf.uint8)

    def decode(record):
        features = tf.io.parse_single_example(record, spec)
        roll = tf.reshape(tf.io.decode_raw(features["roll"], tf.uint8),
                          [features["steps"], num_notes, 2])
        beat = tf.cast(tf.sparse.to_dense(features["beat"]), tf.int32)
        return tf.concat([silence, roll], axis=0), beat

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

    def to_model(roll, beat):
        roll = tf.cast(roll, tf.float32)
        target = roll[:, 1:]
        return {"roll": roll[:, :-1], "beat": beat, "target": target}, target

    # A repeated stream loses nothing by dropping a last partial batch, and
    # full batches keep shapes static for model.fit and XLA.
    dataset = (windows.batch(batch_size, drop_remainder=repeat)
               .map(to_model, num_parallel_calls=tf.data.AUTOTUNE))
    if not repeat:
        # A finite pass has a length known from the pieces' lengths: telling
        # tf.data lets Keras show progress and end validation without a
        # "ran out of data" warning (tf.data checks the count as it goes).
        count = usable if shuffle else int(np.sum(used // window))
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
