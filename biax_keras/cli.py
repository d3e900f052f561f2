"""The `biax` command line: prepare, train, generate, evaluate, export, benchmark, render.

Every subcommand is a pair: `_add_<name>(subparsers)` declares its flags and
`_run_<name>(args)` does the work and returns a JSON-able dict, which `--json`
prints as one object on stdout (logs go to stderr). Exit codes: 0 success,
2 user error (one line on stderr), 1 a bug.
"""

import argparse
import json
import logging
import os
import sys

from biax_keras.errors import UserError

log = logging.getLogger("biax_keras")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit code 2."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


# ----------------------------------------------------------------------------
# prepare
# ----------------------------------------------------------------------------


def _add_prepare(subparsers):
    p = subparsers.add_parser(
        "prepare",
        help="read MIDI (or bach, or JSB JSON) into train/valid/test TFRecords",
        description=(
            "SOURCE is a folder of MIDI files (searched recursively), one MIDI "
            "file, a TFRecord of NoteSequence protos, `bach` (the chorales in "
            "music21's corpus) or a JSB-format .json/.pickle file."
        ),
    )
    p.add_argument("source")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--steps-per-quarter", type=_positive_int, default=4)
    p.add_argument("--lowest-pitch", type=int, default=24)
    p.add_argument("--num-notes", type=_positive_int, default=78)
    p.add_argument("--split", default="0.8,0.1,0.1",
                   help="train,valid,test fractions (ignored when the source has its own split)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="parallel readers (default: number of CPU cores)")
    p.set_defaults(func=_run_prepare)


def _run_prepare(args):
    from biax_keras import data

    try:
        fractions = tuple(float(x) for x in args.split.split(","))
    except ValueError:
        raise UserError(f"--split must be three fractions like 0.8,0.1,0.1, got {args.split!r}")
    report = data.prepare(
        args.source,
        args.out,
        steps_per_quarter=args.steps_per_quarter,
        lowest_pitch=args.lowest_pitch,
        num_notes=args.num_notes,
        split=fractions,
        seed=args.seed,
        workers=args.workers,
    )
    if not args.json:
        print(data.format_report(report))
    return report


# ----------------------------------------------------------------------------
# benchmark
# ----------------------------------------------------------------------------

_BENCHMARKS = {
    # name -> module in biax_keras.bench with a `run(args) -> dict` and `add_arguments(parser)`
    "data": "biax_keras.bench.data",
}


def _add_benchmark(subparsers):
    import importlib

    p = subparsers.add_parser("benchmark", help="measure speed: " + ", ".join(_BENCHMARKS))
    what = p.add_subparsers(dest="what", required=True, parser_class=_Parser)
    for name, module in _BENCHMARKS.items():
        q = what.add_parser(name, help=f"{name} benchmark")
        q.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        importlib.import_module(module).add_arguments(q)
        q.set_defaults(func=_run_benchmark)


def _run_benchmark(args):
    import importlib

    result = importlib.import_module(_BENCHMARKS[args.what]).run(args)
    if not args.json:
        print(json.dumps(result, indent=2))
    return result


# ----------------------------------------------------------------------------

_COMMANDS = [
    _add_prepare,
    _add_benchmark,
]


def build_parser():
    parser = _Parser(prog="biax", description="Biaxial recurrent network for polyphonic music.")
    parser.add_argument("-v", "--verbose", action="store_true", help="more logging on stderr")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in _COMMANDS:
        add(subparsers)
    for name, sub in subparsers.choices.items():
        if name != "benchmark":
            sub.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return parser


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def main(argv=None):
    _quiet_tensorflow()
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or not args.json else logging.WARNING,
        stream=sys.stderr,
        format="%(message)s",
    )
    try:
        result = args.func(args)
    except UserError as e:
        sys.stderr.write(f"biax {args.command}: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
