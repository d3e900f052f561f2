"""`biax benchmark data`: how fast `prepare` reads and `make_dataset` feeds.

Two numbers, each the median of several runs:

- prepare throughput on the Bach chorales of music21's corpus (pieces/s);
- tf.data throughput of the training pipeline (windows/s, and note-steps/s,
  one note-step being one note at one predicted step: windows x T x N),
  measured after a first pass has filled the in-memory cache.

Training consumes about 40k note-steps/s on a laptop CPU; the pipeline should
deliver ten times that so it is never the bottleneck.
"""

import logging
import statistics
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

# Ten times what training consumes on a CPU (see the module docstring).
TARGET_NOTE_STEPS_PER_S = 400_000


def add_arguments(parser):
    """Declare the benchmark's flags on an argparse parser."""
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement")
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--batches", type=int, default=300,
                        help="batches timed per pipeline run")
    parser.add_argument("--limit", type=int, default=None,
                        help="prepare only the first N chorales")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--data", default=None,
                        help="time the pipeline on this prepared folder (skips nothing: "
                             "prepare is still timed on bach)")


def _pipeline_rate(directory, window, batch_size, batches, seed):
    from biax_keras import data

    dataset = data.make_dataset(directory, "train", window=window, batch_size=batch_size, seed=seed)
    iterator = iter(dataset)
    for _ in range(max(batches // 10, 20)):  # fill the cache, let autotune settle
        next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        inputs, _ = next(iterator)
    seconds = time.perf_counter() - started
    num_notes = int(inputs["roll"].shape[2])
    windows_per_s = batches * batch_size / seconds
    return windows_per_s, num_notes


def run(args):
    """Run the benchmark.

    Args:
        args: the parsed flags of `add_arguments`.

    Returns:
        dict with "prepare" (pieces, seconds and pieces_per_s per run, median)
        and "pipeline" (windows_per_s and note_steps_per_s per run, median,
        the target and whether it is met).
    """
    from biax_keras import data

    with tempfile.TemporaryDirectory(prefix="biax-bench-") as tmp:
        prepare_runs = []
        for repeat in range(args.repeats):
            out = Path(tmp) / f"bach{repeat}"
            report = data.prepare("bach", out, workers=args.workers, limit=args.limit)
            prepare_runs.append({"pieces": len(report["read"]), "seconds": report["seconds"],
                                 "pieces_per_s": round(len(report["read"]) / report["seconds"], 2)})
            log.info("prepare bach: %s", prepare_runs[-1])
        directory = args.data or str(Path(tmp) / "bach0")
        rates = []
        for repeat in range(args.repeats):
            windows_per_s, num_notes = _pipeline_rate(
                directory, args.window, args.batch_size, args.batches, seed=repeat)
            rates.append(windows_per_s)
            log.info("pipeline: %.0f windows/s", windows_per_s)

    note_steps = [r * args.window * num_notes for r in rates]
    median_note_steps = statistics.median(note_steps)
    return {
        "prepare": {
            "source": "bach",
            "runs": prepare_runs,
            "pieces_per_s": statistics.median(r["pieces_per_s"] for r in prepare_runs),
        },
        "pipeline": {
            "data": args.data or "bach",
            "window": args.window,
            "batch_size": args.batch_size,
            "num_notes": num_notes,
            "windows_per_s_runs": [round(r, 1) for r in rates],
            "windows_per_s": round(statistics.median(rates), 1),
            "note_steps_per_s": round(median_note_steps),
            "target_note_steps_per_s": TARGET_NOTE_STEPS_PER_S,
            "meets_target": median_note_steps >= TARGET_NOTE_STEPS_PER_S,
        },
    }
