"""`biax prepare`: a source read into a prepared folder, streaming.

`plan` checks the settings, lists the source (`sources`) and splits it by
piece; `prepare` reads the pieces in worker processes (`readers`) and writes
each to its shard as soon as it is read, so memory does not grow with the
collection, into a temporary folder that then replaces `out`; `rebalance`
splits again among the pieces read when skipped files emptied a split. The
Beam pipeline (`beam.py`) shares `plan`, `rebalance` and `finish`.
"""

import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from biax_keras.data import records
from biax_keras.data.readers import FILE_TIMEOUT_S, _default_workers, _read_all
from biax_keras.data.records import (
    LENGTHS_FILE,
    MAX_SHARDS,
    META_FORMAT,
    META_VERSION,
    SPLITS,
    _example,
    shard_counts,
    shard_name,
    shard_of,
    tf_example_features,
)
from biax_keras.data.sources import BACH, _find_source, _is_jsb, _midi_folder
from biax_keras.errors import UserError
from biax_keras.music import representation
from biax_keras.style_names import check_style_name, style_name_of

log = logging.getLogger(__name__)
DEFAULT_SPLIT = (0.8, 0.1, 0.1)


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


@dataclasses.dataclass
class _Plan:
    """Everything `prepare` decided before reading: what, how, where to."""

    source: object
    out: Path
    found: object  # sources._Source
    assignment: dict
    settings: tuple
    shards: dict
    timeout_s: float
    meta: dict
    overwrite: bool = False
    fractions: tuple = DEFAULT_SPLIT
    seed: int = 0
    requested_shards: object = None


def plan(source, out, *, steps_per_quarter=None,
         lowest_pitch=representation.DEFAULT_LOWEST_PITCH,
         num_notes=representation.DEFAULT_NUM_NOTES, split=DEFAULT_SPLIT, seed=0,
         max_steps=representation.DEFAULT_MAX_STEPS, limit=None, timeout_s=FILE_TIMEOUT_S,
         shards=None, overwrite=False, style=None):
    """Check the settings, list the source and split it: what `prepare` and the
    Beam pipeline share before reading (arguments as for `prepare`)."""
    fractions = _check_fractions(split)
    style = check_style_name(style) if style is not None else style_name_of(source)
    steps_per_quarter = records.steps_per_quarter_of(source, steps_per_quarter,
                                                      is_jsb=_is_jsb(source))
    if steps_per_quarter < 1 or max_steps < 1:
        raise UserError("--steps-per-quarter and --max-steps must be positive")
    if num_notes < 1 or lowest_pitch < 0 or lowest_pitch + num_notes > representation.NUM_MIDI_PITCHES:
        raise UserError(f"the note range --lowest-pitch {lowest_pitch} --num-notes {num_notes} "
                        f"must lie within MIDI pitches 0..127")
    if shards is not None and not 1 <= shards <= MAX_SHARDS:
        raise UserError(f"--shards must be between 1 and {MAX_SHARDS}, got {shards}")
    out = Path(out).absolute()
    records.check_out(out, overwrite)
    found = _find_source(source, limit)
    names = [task[1] for task in found.tasks]
    assignment = found.own_split or assign_splits(names, fractions, seed)
    counts = shard_counts(assignment, shards)
    meta = {"format": META_FORMAT, "version": META_VERSION,
            "steps_per_quarter": steps_per_quarter, "lowest_pitch": lowest_pitch,
            "num_notes": num_notes, "play_only": found.play_only, "source": str(source),
            "style": style, "shards": counts}
    return _Plan(source, out, found, assignment,
                 (steps_per_quarter, lowest_pitch, num_notes, max_steps), counts, timeout_s, meta,
                 overwrite, fractions, seed, shards)


def check_request(source, steps_per_quarter=None, split=DEFAULT_SPLIT):
    """What `plan` refuses that costs nothing to find out, for the command line
    to say before TensorFlow starts: the split, the resolution of a JSB file,
    a folder without MIDI files.

    Raises:
        UserError: for any of these.
    """
    _check_fractions(split)
    records.steps_per_quarter_of(source, steps_per_quarter, is_jsb=_is_jsb(source))
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
    records.check_out(plan.out, plan.overwrite)  # someone may have put files there meanwhile
    _replace_folder(staging, plan.out)


def prepare(source, out, *, steps_per_quarter=None,
            lowest_pitch=representation.DEFAULT_LOWEST_PITCH,
            num_notes=representation.DEFAULT_NUM_NOTES, split=DEFAULT_SPLIT, seed=0,
            workers=None, max_steps=representation.DEFAULT_MAX_STEPS, limit=None,
            timeout_s=FILE_TIMEOUT_S, shards=None, overwrite=False, style=None):
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
        style: the style every piece is tagged with (meta.json's `style`),
            which a style model trained on several datasets learns them by;
            None: the source's name (`piano-midi-de.json`: `piano-midi-de`,
            a folder: its name, `bach`: `bach`).

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
               timeout_s=timeout_s, shards=shards, overwrite=overwrite, style=style)
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
