"""`biax benchmark generate`: how fast the compiled sampler composes.

With the default-size model (random weights: speed does not depend on them):

- one sample of 60 s of music (480 steps at 120 bpm): wall time, median of
  several runs after a first call that compiles; the compilation time (first
  call minus a run); the real-time factor (seconds of music per second);
- a batch of 16 samples the same way, and its time relative to one sample;
- the way earlier Keras ports generate, for comparison: for every step and
  every note, `model.predict` on the whole history so far (the note axis
  teacher-forced with the notes already chosen), reading one note's
  probabilities. Its cost grows with the history, so a few calls are timed at
  two history lengths, a line `a + b * T` is fitted, and the whole piece is
  extrapolated from it.

Beside them, the arithmetic: the matrix-product FLOPs of a sample, the FLOP/s
each run reached, and a large matmul's FLOP/s measured in the same process.
Every sample runs the time-axis LSTM for every note at every step, so a batch
of K samples does K times the work of one; `batch_time_ratio_floor` is the
ratio the batch would reach if it ran at the matmul's FLOP/s, a lower bound
that the machine's arithmetic sets, whatever the sampler does.

Targets on a 2-core laptop-class CPU: one sample at 30x real time or better,
and 16 samples in at most 4x the time of one.
"""

import logging
import statistics
import time

import numpy as np

log = logging.getLogger(__name__)

TARGET_REAL_TIME_FACTOR = 30.0
TARGET_BATCH_RATIO = 4.0
SECONDS_PER_MINUTE = 60.0


def add_arguments(parser):
    """Declare the benchmark's flags on an argparse parser."""
    parser.add_argument("--seconds", type=float, default=60.0, help="music per sample")
    parser.add_argument("--bpm", type=float, default=120.0)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each measurement")
    parser.add_argument("--batch", type=int, default=16, help="samples of the batched run")
    parser.add_argument("--baseline-calls", type=int, default=8,
                        help="per-note model.predict calls timed at each history length")
    parser.add_argument("--baseline-histories", default="1,32",
                        help="two history lengths (steps) the baseline is timed at")
    parser.add_argument("--time-units", default=None,
                        help="time-axis LSTM sizes, e.g. 300,300 (default: the model's default)")
    parser.add_argument("--note-units", default=None,
                        help="note-axis LSTM sizes, e.g. 100,50 (default: the model's default)")
    parser.add_argument("--seed", type=int, default=0)


def _units(text):
    return tuple(int(u) for u in text.split(",")) if text else None


def _timed_runs(function, repeats):
    """`(first_call_seconds, [run seconds])` of `function()`."""
    started = time.perf_counter()
    function()
    first = time.perf_counter() - started
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        runs.append(time.perf_counter() - started)
    return first, runs


def _baseline_call_seconds(model, history, calls, seed):
    """Median seconds of one per-note `model.predict` call on `history` steps.

    It runs the old way of sampling: predict the whole history, read note n
    of the last step, sample it into the target, move to note n + 1.
    """
    rng = np.random.default_rng(seed)
    notes = model.config.num_notes
    past = (rng.random((history, notes, 2)) < 0.1).astype(np.float32)
    past[..., 1] *= past[..., 0]
    roll = np.concatenate([np.zeros((1, notes, 2), np.float32), past[:-1]])[None]
    target = past.copy()[None]
    target[0, -1] = 0.0  # the step being composed: filled note by note
    beat = (np.arange(history) % 16).astype(np.int32)[None]
    seconds = []
    for n in range(calls):
        started = time.perf_counter()
        p = model.predict({"roll": roll, "beat": beat, "target": target}, verbose=0)
        play = float(rng.random() < p[0, -1, n, 0])
        target[0, -1, n] = (play, play * float(rng.random() < p[0, -1, n, 1]))
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def run(args):
    """Run the benchmark.

    Args:
        args: the parsed flags of `add_arguments`.

    Returns:
        dict with "one" and "batch" (first call, compile, runs, median,
        real-time factor), "baseline" (per-call seconds, fitted line,
        extrapolated seconds for the piece, speed-up), the targets and whether
        they are met.
    """
    import os

    import tensorflow as tf
    from benchmarks.speed.train import (
        MATMUL_SIZE,
        forward_flops_per_note_step,
        matmul_timer,
    )

    from biax_keras.generation import sampling
    from biax_keras.nn.model import NOTES_PER_ITERATION, BiaxialConfig, build_model

    sizes = {}
    if args.time_units:
        sizes["time_units"] = _units(args.time_units)
    if args.note_units:
        sizes["note_units"] = _units(args.note_units)
    config = BiaxialConfig(**sizes)
    model = build_model(config, compile=False)
    steps = sampling.steps_for_seconds(args.seconds, args.bpm, config.steps_per_quarter)
    music_seconds = steps * SECONDS_PER_MINUTE / args.bpm / config.steps_per_quarter
    sample_flops = forward_flops_per_note_step(config) * config.num_notes * steps

    def measure(num_samples):
        seeds = iter(range(args.seed, args.seed + args.repeats + 1))
        first, runs = _timed_runs(
            lambda: sampling.generate_batch(model, num_samples, steps, seed=next(seeds)),
            args.repeats)
        median = statistics.median(runs)
        result = {
            "num_samples": num_samples,
            "first_call_s": round(first, 3),
            "compile_s": round(max(first - median, 0.0), 3),
            "runs_s": [round(r, 3) for r in runs],
            "median_s": round(median, 3),
            "real_time_factor": round(music_seconds * num_samples / median, 1),
            "gflops": round(sample_flops * num_samples / median / 1e9, 1),
        }
        log.info("generate %d sample(s): %s", num_samples, result)
        return result

    one = measure(1)
    batch = measure(args.batch)

    histories = [int(h) for h in args.baseline_histories.split(",")]
    per_call = [_baseline_call_seconds(model, h, args.baseline_calls, args.seed)
                for h in histories]
    slope = (per_call[1] - per_call[0]) / (histories[1] - histories[0])
    intercept = per_call[0] - slope * histories[0]
    if slope < 0:
        # A call over a longer history does more work, never less: a falling
        # line is timing noise, and extrapolating it would claim a negative
        # time. Take the cheaper call as the flat cost of every call instead,
        # which can only understate the speed-up.
        slope, intercept = 0.0, min(per_call)
    # The old loop makes one call per note for every step, the history
    # growing from 1 to `steps`: sum over T of notes * (a + b * T).
    history_sum = steps * (steps + 1) / 2
    baseline_s = config.num_notes * (intercept * steps + slope * history_sum)
    log.info("per-note predict baseline: %s s per call at histories %s", per_call, histories)

    matmul_seconds = matmul_timer()
    matmul_gflops = statistics.median(
        2 * MATMUL_SIZE**3 / matmul_seconds() / 1e9 for _ in range(args.repeats * 3))
    batch_floor_s = sample_flops * args.batch / (matmul_gflops * 1e9)

    batch_ratio = batch["median_s"] / one["median_s"]
    return {
        "model": {"time_units": list(config.time_units), "note_units": list(config.note_units),
                  "num_notes": config.num_notes, "weights": "random"},
        "steps": steps,
        "music_seconds": music_seconds,
        "bpm": args.bpm,
        "decoder": {"jit_scope": sampling.JIT_SCOPE,
                    "notes_per_iteration": NOTES_PER_ITERATION},
        "one": one,
        "batch": batch,
        "batch_time_ratio": round(batch_ratio, 2),
        "arithmetic": {
            "gflop_per_sample": round(sample_flops / 1e9, 2),
            "matmul_gflops": round(matmul_gflops, 1),
            "batch_floor_s": round(batch_floor_s, 2),
            "batch_time_ratio_floor": round(batch_floor_s / one["median_s"], 2),
        },
        "baseline": {
            "method": "model.predict on the whole history, once per note and step",
            "histories": histories,
            "per_call_s": [round(s, 4) for s in per_call],
            "per_call_fit_s": {"a": round(intercept, 5), "b_per_step": round(slope, 6)},
            "extrapolated_s": round(baseline_s, 1),
            "speedup": round(baseline_s / one["median_s"], 1),
        },
        "targets": {
            "real_time_factor": TARGET_REAL_TIME_FACTOR,
            "batch_time_ratio": TARGET_BATCH_RATIO,
            "meets_real_time_factor": one["real_time_factor"] >= TARGET_REAL_TIME_FACTOR,
            "meets_batch_time_ratio": batch_ratio <= TARGET_BATCH_RATIO,
        },
        "machine": {"cpus": os.cpu_count(), "tensorflow": tf.__version__},
    }
