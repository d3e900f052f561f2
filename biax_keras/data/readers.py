"""Reading pieces in worker processes, each file bounded in time and memory.

`_read_all` yields `(index, name, outcome)` for every task in order, from a
pool of spawned processes when there are enough tasks: the outcome is
`(roll, beat, notes_dropped)` or a skip reason. A file that hangs, swamps
its reader or kills it costs one skip, never the run. `biax prepare` and its
Beam pipeline both read through `_read_chunk`.

This module must not import TensorFlow: the worker processes import it.
"""

import concurrent.futures
import multiprocessing
import os
import signal

from biax_keras.data.music21_corpus import _music21_file_to_note_sequence
from biax_keras.music import representation

# Per-file limits in the worker processes: a backstop behind the checks in
# representation.read_midi, so that no single file can hang or swamp a run.
FILE_TIMEOUT_S = 60
WORKER_MEMORY_BYTES = 3 * 2**30
# Below this many pieces a process pool costs more than it saves.
_MIN_TASKS_FOR_POOL = 8
_CHUNK_SIZE = 8
_worker_timeout_s = None  # set in worker processes only


class _FileTimeout(BaseException):
    """A file's time is up. Not an `Exception`: the parsers' own broad handlers
    (mido's corrupt-data catch-all, music21's repeat expansion) must not take it
    for one of their errors and read on without a limit."""


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
