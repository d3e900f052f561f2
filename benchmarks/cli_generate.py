"""End-to-end wall time of `biax generate`, and where it goes.

    python benchmarks/cli_generate.py --before ../cli-before --repeats 5 \
        > benchmarks/results/cli-generate-DATE-HOST.json

Times the whole command as a user runs it (a new process each time):
`biax generate --model saved_models/bach --out OUT.mid --seconds 30`, with
this checkout's code and, given `--before DIR`, with another checkout's (an
older commit), alternating the two so that both see the same load on a
shared machine. Each side first runs once untimed (the operating system's
file cache, and the XLA cache of the side that has one), then `--repeats`
times. The XLA cache of this checkout's runs lives in a scratch folder; the
first, untimed run is also reported, as the cold-cache time.

It also times a mistyped model path (`--model missing.keras`), which
should be refused before TensorFlow is imported, the same way.

Then it splits one run of this checkout's code into its phases, in a fresh
process each, with the XLA cache off, cold and warm: importing TensorFlow;
importing Keras, note_seq and the package; loading the model; the first
call of the sampler (tracing, XLA compilation and sampling); a second call
(sampling alone); writing the MIDI file.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_PHASES = r"""
import json, sys, time
t0 = time.perf_counter()
from biax_keras.app import cli
cli._quiet_tensorflow()
cli._persistent_xla_cache()
cli._import_tensorflow_quietly()
t1 = time.perf_counter()
import biax_keras
try:  # the sampler's module, before and after it was named sampling
    import biax_keras.sampling as generate
except ImportError:
    import biax_keras.generate as generate
from biax_keras.music import representation
t2 = time.perf_counter()
model = biax_keras.load_model(sys.argv[1])
t3 = time.perf_counter()
steps = generate.steps_for_seconds(float(sys.argv[2]), 120.0, model.config.steps_per_quarter)
roll = generate.generate_batch(model, 1, steps, seed=0)
t4 = time.perf_counter()
generate.generate_batch(model, 1, steps, seed=0)
t5 = time.perf_counter()
representation.roll_to_midi(roll[0], sys.argv[3], model.config.steps_per_quarter,
                            model.config.lowest_pitch, qpm=120.0)
t6 = time.perf_counter()
print(json.dumps({"import_tensorflow": t1 - t0, "import_keras_note_seq_biax": t2 - t1,
                  "load_model": t3 - t2, "first_sampler_call": t4 - t3,
                  "sampling_alone": t5 - t4, "write_midi": t6 - t5}))
"""


def _command(seconds, model, out):
    return [sys.executable, "-m", "biax_keras.app.cli", "generate", "--model", model,
            "--out", out, "--seconds", str(seconds)]


def _timed(tree, command, env, expect=0):
    # Run inside the checkout itself: `python -m` puts the working folder
    # first on sys.path, ahead of PYTHONPATH.
    env = dict(env, PYTHONPATH=str(tree))
    started = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if done.returncode != expect:
        raise SystemExit(f"{' '.join(command)} failed in {tree}:\n{done.stderr[-2000:]}")
    return took


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", metavar="DIR", help="a checkout of the code to compare with")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--model", default="saved_models/bach",
                        help="relative to each checkout, or absolute")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="biax-cli-bench-"))
    base = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", BIAX_XLA_CACHE=str(scratch / "xla"))
    sides = {"after": ROOT}
    if args.before:
        sides["before"] = Path(args.before).resolve()
    out = str(scratch / "piece.mid")
    command = _command(args.seconds, args.model, out)
    typo = _command(args.seconds, str(scratch / "missing.keras"), out)
    result = {"command": " ".join(["biax"] + command[3:]), "repeats": args.repeats,
              "runs_s": {name: [] for name in sides},
              "typo_command": " ".join(["biax"] + typo[3:]), "typo_runs_s": {name: [] for name in sides}}
    load_before = os.getloadavg()
    try:
        result["after_cold_xla_cache_s"] = round(_timed(ROOT, command, base), 2)
        if "before" in sides:
            _timed(sides["before"], command, base)  # untimed: file cache
        for _ in range(args.repeats):
            for name, tree in sides.items():
                result["runs_s"][name].append(round(_timed(tree, command, base), 2))
        result["median_s"] = {name: statistics.median(runs) for name, runs in result["runs_s"].items()}
        if "before" in sides:
            result["after_over_before"] = round(result["median_s"]["after"] / result["median_s"]["before"], 3)
        for _ in range(args.repeats):
            for name, tree in sides.items():
                result["typo_runs_s"][name].append(round(_timed(tree, typo, base, expect=2), 2))
        result["typo_median_s"] = {name: statistics.median(runs)
                                   for name, runs in result["typo_runs_s"].items()}

        phases = {}
        for mode, cache in (("xla_cache_off", ""), ("xla_cache_cold", str(scratch / "phases")),
                            ("xla_cache_warm", str(scratch / "phases"))):
            done = subprocess.run([sys.executable, "-c", _PHASES, args.model, str(args.seconds), out],
                                  cwd=ROOT, env=dict(base, PYTHONPATH=str(ROOT), BIAX_XLA_CACHE=cache),
                                  capture_output=True, text=True, check=True)
            phases[mode] = {k: round(v, 2) for k, v in json.loads(done.stdout).items()}
        result["phases_s"] = phases
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    from importlib.metadata import version

    result["machine"] = {"host": socket.gethostname(), "cpus": os.cpu_count(),
                         "processor": platform.processor() or platform.machine(),
                         "load_average_at_start": [round(x, 2) for x in load_before],
                         "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                         "python": platform.python_version(), "tensorflow": version("tensorflow"),
                         "keras": version("keras")}
    result["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
