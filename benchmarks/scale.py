#!/usr/bin/env python
"""Scale test: prepare and stream a large generated MIDI collection in bounded memory.

For each collection size N it generates N small MIDI files (seeded random
chord progressions of 2 to 4 bars, under --work, never committed), then
measures wall time, files/s and the peak resident memory of the whole process
tree (the command and every process it starts, sampled every 0.1 s) for:

- `biax prepare` with local processes (the default path);
- `biax prepare --runner DirectRunner` (Apache Beam, multi-processing), when
  --beam-python names an interpreter with the `beam` extra; its report must
  equal the local one;
- one epoch of `biax train` with the tiny config on the prepared folder,
  streamed from its shards (cache budget 0 and an 8 MiB shuffle buffer, as a
  split far larger than both is read) and, for contrast, with the defaults
  (these small splits fit the cache budget: cached).

    nice -n 5 .venv/bin/python benchmarks/scale.py --sizes 5000 20000 \\
        --work /tmp/biax-scale --beam-python /path/to/beam-venv/bin/python \\
        > benchmarks/results/scale-$(date +%F)-$(hostname -s).json

Prints one JSON object; progress goes to stderr.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "training" / "configs" / "tiny.json"
TICKS_PER_QUARTER = 96
# Chords of a major key, as semitones above the tonic.
CHORDS = [(0, 4, 7), (5, 9, 12), (7, 11, 14), (9, 12, 16), (2, 5, 9)]

# Trains one epoch. "stream" reads these small collections the way the
# defaults read a collection of Lakh's size: nothing cached (the split is over
# the cache budget) and a shuffle buffer far smaller than the split (8 MiB,
# about 1,000 of these pieces; the default 256 MiB holds about 1,100 pieces
# of a few minutes).
STREAM_SHUFFLE_BYTES = 8 * 2**20
TRAIN_CHILD = f"""
import sys
from biax_keras import data
from biax_keras.app import cli
from biax_keras.data import pipeline
if sys.argv[1] == "stream":
    pipeline.CACHE_BUDGET_BYTES = 0
    pipeline.SHUFFLE_BUFFER_BYTES = {STREAM_SHUFFLE_BYTES}
sys.exit(cli.main(sys.argv[2:]))
"""


def log(message):
    print(message, file=sys.stderr, flush=True)


def midi_file(rng):
    """Bytes of a small type-0 MIDI file: a chord per half bar over 2 to 4 bars."""
    import mido

    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=500_000, time=0))
    track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    tonic = rng.randrange(48, 66)
    for _ in range(rng.randrange(4, 9)):  # half bars
        chord = [tonic + i for i in rng.choice(CHORDS)]
        for pitch in chord:
            track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
        for index, pitch in enumerate(chord):
            track.append(mido.Message("note_off", note=pitch, velocity=0,
                                      time=2 * TICKS_PER_QUARTER if index == 0 else 0))
    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_QUARTER)
    midi.tracks.append(track)
    import io

    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def generate(folder, count, seed=0):
    """`count` MIDI files in `folder` (100 per subfolder); kept for reuse."""
    marker = folder / ".complete"
    if marker.is_file() and int(marker.read_text()) == count:
        return
    rng = random.Random(seed)
    for i in range(count):
        sub = folder / f"{i // 100:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"piece{i:06d}.mid").write_bytes(midi_file(rng))
    marker.write_text(str(count))


def _tree_rss(root_pid):
    """Resident bytes of a process and all its descendants (Linux /proc)."""
    children, rss = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as f:
                pages = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def measure(command, env=None):
    """Run `command`; returns (seconds, peak tree RSS in bytes, stdout)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env, cwd=ROOT)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(process.pid))
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    done.set()
    sampler.join()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, command))} failed:\n{err.decode()[-3000:]}")
    return seconds, peak[0], out.decode()


def mib(n):
    return round(n / 2**20, 1)


def run_size(args, count):
    work = Path(args.work)
    midi = work / f"midi-{count}"
    log(f"[{count}] generating files in {midi}")
    generate(midi, count)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    result = {"files": count}

    local = work / f"prepared-{count}"
    prepare = ["-m", "biax_keras.app.cli", "prepare", str(midi), "--out", str(local), "--json"]
    if args.workers:
        prepare += ["--workers", str(args.workers)]
    seconds, peak, out = measure([args.python, *prepare], env)
    report = json.loads(out)
    result["prepare_local"] = {
        "seconds": round(seconds, 1), "files_per_s": round(count / seconds, 1),
        "peak_rss_mib": mib(peak), "read": len(report["read"]),
        "skipped": len(report["skipped"]), "steps": report["steps"],
        "shards": json.loads((local / "meta.json").read_text())["shards"],
        "bytes_on_disk": sum(p.stat().st_size for p in local.iterdir())}
    log(f"[{count}] prepare local: {result['prepare_local']}")

    if args.beam_python:
        beam_out = work / f"prepared-beam-{count}"
        command = [args.beam_python, "-m", "biax_keras.app.cli", "prepare", str(midi),
                   "--out", str(beam_out), "--runner", "DirectRunner", "--json"]
        if args.workers:
            command.append(f"--direct_num_workers={args.workers}")
        seconds, peak, out = measure(command, env)
        beam_report = json.loads(out)
        same = ({k: v for k, v in beam_report.items() if k != "seconds"}
                == {k: v for k, v in report.items() if k != "seconds"})
        result["prepare_beam_direct"] = {
            "seconds": round(seconds, 1), "files_per_s": round(count / seconds, 1),
            "peak_rss_mib": mib(peak), "read": len(beam_report["read"]),
            "report_equals_local": same}
        log(f"[{count}] prepare beam: {result['prepare_beam_direct']}")
        if not same:
            raise SystemExit("the Beam report differs from the local one")
        subprocess.run(["rm", "-rf", str(beam_out)], check=True)

    for mode in args.train:
        run = work / f"run-{mode}-{count}"
        subprocess.run(["rm", "-rf", str(run)], check=True)
        command = [args.python, "-c", TRAIN_CHILD, mode, "train", "--data", str(local),
                   "--out", str(run), "--config", str(TINY), "--epochs", "1", "--json"]
        seconds, peak, out = measure(command, env)
        report = json.loads(out)
        steps = report["steps_per_epoch"]
        batch = report["config"]["train"]["batch_size"]
        result[f"train_epoch_{mode}"] = {
            "seconds": round(seconds, 1), "steps": steps,
            "windows_per_s": round(steps * batch / seconds, 1),
            "peak_rss_mib": mib(peak), "loss": round(report["last"]["loss"], 4)}
        log(f"[{count}] train one epoch ({mode}): {result[f'train_epoch_{mode}']}")
        subprocess.run(["rm", "-rf", str(run)], check=True)
    if not args.keep:
        subprocess.run(["rm", "-rf", str(local)], check=True)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--work", default="/tmp/biax-scale",
                        help="where the generated files and prepared folders go")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter with biax_keras's dependencies")
    parser.add_argument("--beam-python", default=None,
                        help="interpreter with the beam extra (skip Beam when not given)")
    parser.add_argument("--workers", type=int, default=None,
                        help="reader processes (default: the CPU cores)")
    parser.add_argument("--train", nargs="*", default=["stream", "cache"],
                        choices=["stream", "cache"], help="training epochs to time")
    parser.add_argument("--keep", action="store_true", help="keep the prepared folders")
    args = parser.parse_args(argv)
    import platform

    results = {"date": time.strftime("%Y-%m-%d"), "host": platform.node(),
               "cpus": len(os.sched_getaffinity(0)), "sizes": []}
    for count in args.sizes:
        results["sizes"].append(run_size(args, count))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
