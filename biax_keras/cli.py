"""The `biax` command line: prepare, train, generate, evaluate, export, benchmark, render, studio.

Every subcommand is a pair: `_add_<name>(subparsers)` declares its flags and
`_run_<name>(args)` does the work and returns a JSON-able dict, which `--json`
prints as one object on stdout (logs go to stderr). Exit codes: 0 success,
2 user error (one line on stderr), 1 a bug.
"""

import argparse
import json
import logging
import os
import re
import sys
import tempfile
import warnings

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


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
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
        help="read MIDI (or bach, or JSB JSON) into sharded train/valid/test TFRecords",
        description=(
            "SOURCE is a folder of MIDI files (searched recursively), one MIDI "
            "file, a TFRecord of NoteSequence protos, `bach` (the chorales in "
            "music21's corpus) or a JSB-format .json/.pickle file. With --runner "
            "NAME the same conversion runs as an Apache Beam pipeline (pip install "
            "'biax_keras[beam]'); Beam pipeline options such as "
            "--direct_num_workers=4 or --project=P follow, written --option=value."
        ),
        # Beam's options pass through: none may be taken for an abbreviation of ours.
        allow_abbrev=False,
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
    p.add_argument("--max-steps", type=_positive_int, default=20000,
                   help="skip pieces longer than this many steps (bounds memory per file)")
    p.add_argument("--limit", type=_positive_int, default=None,
                   help="read only the first N pieces (quick runs)")
    p.add_argument("--shards", type=_positive_int, default=None,
                   help="shards of the train split (valid and test get as many, at most one "
                        "per piece; default: one per 512 pieces)")
    p.add_argument("--runner", default=None, metavar="NAME",
                   help="run as an Apache Beam pipeline on this runner (DirectRunner, "
                        "DataflowRunner, FlinkRunner, SparkRunner, ...); default: local "
                        "processes")
    p.set_defaults(func=_run_prepare, pipeline_options=[])


def _run_prepare(args):
    from biax_keras import data

    try:
        fractions = tuple(float(x) for x in args.split.split(","))
    except ValueError:
        raise UserError(f"--split must be three fractions like 0.8,0.1,0.1, got {args.split!r}")
    settings = dict(
        steps_per_quarter=args.steps_per_quarter,
        lowest_pitch=args.lowest_pitch,
        num_notes=args.num_notes,
        split=fractions,
        seed=args.seed,
        workers=args.workers,
        max_steps=args.max_steps,
        limit=args.limit,
        shards=args.shards,
    )
    if args.runner is not None:
        from biax_keras import beam

        report = beam.prepare(args.source, args.out, runner=args.runner,
                              pipeline_options=args.pipeline_options, **settings)
    else:
        report = data.prepare(args.source, args.out, **settings)
    if not args.json:
        print(data.format_report(report))
    return report


# ----------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------


def _add_train(subparsers):
    p = subparsers.add_parser(
        "train",
        help="train a model on a prepared dataset (model.fit), watched in TensorBoard",
        description=(
            "Trains on the train split of DIR (made by `biax prepare`), validates on "
            "its valid split and writes the run folder RUN: config.json, logs/ "
            "(TensorBoard), history.csv, checkpoints/best.keras and model.keras. "
            "Running the same command on an unfinished RUN resumes it. The note range "
            "and resolution come from the data. Config files: training/configs/*.json."
        ),
    )
    p.add_argument("--data", required=True, metavar="DIR", help="a prepared dataset folder")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder (new, or unfinished to resume)")
    p.add_argument("--config", metavar="FILE", help='JSON {"model": {...}, "train": {...}}')
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--window", type=_positive_int, help="steps predicted per training window")
    p.add_argument("--steps-per-epoch", type=_positive_int,
                   help="batches per epoch (default: one window of every train piece)")
    p.add_argument("--learning-rate", type=_positive_float)
    p.add_argument("--patience", type=_positive_int,
                   help="stop after this many epochs without a better valid NLL")
    p.add_argument("--seed", type=int)
    p.add_argument("--init", metavar="MODEL.keras", help="start from this trained model's weights")
    p.add_argument("--image-every", type=_non_negative_int, metavar="N",
                   help="TensorBoard: the true roll beside the model's probabilities on a "
                        "fixed validation window every N epochs; 0 never (default: 1)")
    p.add_argument("--sample-every", type=_non_negative_int, metavar="N",
                   help="TensorBoard: a composed piece (piano roll and audio) every N "
                        "epochs; 0 never (default: 5)")
    p.add_argument("--strategy", choices=("default", "mirrored", "multi_worker"),
                   help="tf.distribute strategy (multi_worker reads TF_CONFIG)")
    p.add_argument("--peer-timeout", type=_positive_float, default=None, metavar="SECONDS",
                   help="multi_worker: give up when the other workers do not answer for this "
                        "long (default: 300)")
    p.set_defaults(func=_run_train)


def _run_train(args):
    from biax_keras import train

    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "window": args.window,
                 "steps_per_epoch": args.steps_per_epoch, "learning_rate": args.learning_rate,
                 "patience": args.patience, "seed": args.seed,
                 "image_every": args.image_every, "sample_every": args.sample_every}
    report = train.train(args.data, args.out, args.config, strategy=args.strategy,
                         overrides=overrides, init=args.init,
                         peer_timeout_s=args.peer_timeout or train.DEFAULT_PEER_TIMEOUT_S)
    if not args.json:
        print(train.format_report(report))
    return report


# ----------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------


def _add_evaluate(subparsers):
    p = subparsers.add_parser(
        "evaluate",
        help="score a model (frame NLL) or compare generated music with real music",
        description=(
            "Two modes. Likelihood: --model PATH --data SRC [--split] gives the "
            "frame NLL in nats per step, its play and articulate parts and frame "
            "accuracy on a prepared folder or a JSB-format .json/.pickle. "
            "Music statistics: --generated DIR --reference DIR compares two sets "
            "of MIDI files (folders searched recursively): polyphony, silence, "
            "pitch range, pitch-class and note-length histograms with their KL "
            "divergence, share of notes in key, and the longest passage of a "
            "generated piece copied from a reference piece in any transposition."
        ),
    )
    likelihood = p.add_argument_group("likelihood (--model)")
    likelihood.add_argument("--model", metavar="PATH", help="a .keras file, a run folder or a SavedModel")
    likelihood.add_argument("--data", metavar="SRC", help="a prepared folder or a JSB-format .json/.pickle")
    likelihood.add_argument("--split", choices=("train", "valid", "test"), default="valid",
                            help="which split to score (default: valid)")
    music = p.add_argument_group("music statistics (--generated)")
    music.add_argument("--generated", metavar="DIR", help="folder (or file) of generated MIDI")
    music.add_argument("--reference", metavar="DIR", help="folder (or file) of real MIDI to compare with")
    music.add_argument("--plot", metavar="FILE.png",
                       help="also draw the histograms side by side into this PNG file")
    music.add_argument("--steps-per-quarter", type=_positive_int, default=4,
                       help="time resolution the MIDI is read at (default: 4, 16th notes)")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args):
    # The two modes share nothing but the subcommand: each branch checks its own flags.
    if args.model is not None and args.generated is not None:
        raise UserError("give either --model (likelihood) or --generated (music statistics), not both")
    if args.model is not None:
        if args.reference is not None or args.plot is not None:
            raise UserError("--reference and --plot go with --generated, not with --model")
        return _evaluate_likelihood(args)
    if args.generated is not None:
        if args.data is not None:
            raise UserError("--data goes with --model; compare MIDI folders with --generated and --reference")
        return _evaluate_music(args)
    raise UserError(
        "nothing to evaluate: give --model PATH --data SRC (likelihood) "
        "or --generated DIR --reference DIR (music statistics)"
    )


def _evaluate_likelihood(args):
    from biax_keras import evaluate

    if args.data is None:
        raise UserError("--model needs --data SRC (a prepared folder or a JSB-format .json/.pickle)")
    result = evaluate.evaluate_model(args.model, args.data, split=args.split)
    if not args.json:
        print(evaluate.format_scores(result))
    return result


def _evaluate_music(args):
    from biax_keras import musicstats

    if args.reference is None:
        raise UserError("--generated needs --reference DIR, the real music to compare with")
    # Checked before the (long) reading, not after.
    if args.plot is not None and not os.path.isdir(os.path.dirname(os.path.abspath(args.plot))):
        raise UserError(f"cannot write --plot {args.plot}: its folder does not exist")
    result = musicstats.compare_sets(
        args.generated, args.reference, steps_per_quarter=args.steps_per_quarter)
    if args.plot is not None:
        musicstats.plot_comparison(result["generated"], result["reference"], args.plot)
        result["plot"] = args.plot
    if not args.json:
        print(musicstats.format_comparison(result))
    return result


# ----------------------------------------------------------------------------
# generate
# ----------------------------------------------------------------------------


def _add_generate(subparsers):
    p = subparsers.add_parser(
        "generate",
        help="compose MIDI (and WAV) with a model",
        description=(
            "Composes with a model (a .keras file, a run folder or a SavedModel from "
            "`biax export`) and writes FILE.mid; with --num-samples K > 1 it writes "
            "FILE-1.mid ... FILE-K.mid. Without a primer the music is in 4/4 at --bpm. A --primer is "
            "kept as the opening (all of it, or its first --primer-seconds or "
            "--primer-steps) and the new steps continue it in its own tempo and time "
            "signature; --only-new writes the continuation alone. Its notes outside the "
            "model's range are dropped with a warning. --wav also renders FILE.wav "
            "as `biax render` does (a General MIDI piano)."
        ),
    )
    p.add_argument("--model", required=True, metavar="PATH",
                   help="a .keras file, a run folder or an exported SavedModel")
    p.add_argument("--out", required=True, metavar="FILE.mid", help="the MIDI file to write")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=_positive_float, default=None,
                        help="length of the new music in seconds at the tempo (default: 60)")
    length.add_argument("--steps", type=_positive_int, default=None,
                        help="length of the new music in steps (16th notes by default)")
    p.add_argument("--bpm", type=_positive_float, default=None,
                   help="tempo in quarter notes per minute (default: the primer's, else 120)")
    p.add_argument("--temperature", type=_positive_float, default=1.0,
                   help="> 1 wilder, < 1 safer (default: 1)")
    p.add_argument("--conservativity", type=_positive_float, default=1.0,
                   help="P(play) is raised to this power: > 1 plays fewer notes (default: 1)")
    p.add_argument("--adaptive", action="store_true",
                   help="lower the conservativity during silences, as the original did")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same music")
    p.add_argument("--primer", metavar="FILE.mid", default=None, help="MIDI to continue")
    opening = p.add_mutually_exclusive_group()
    opening.add_argument("--primer-seconds", type=_positive_float, default=None, metavar="S",
                         help="continue only the primer's first S seconds (its own tempo)")
    opening.add_argument("--primer-steps", type=_positive_int, default=None, metavar="N",
                         help="continue only the primer's first N steps")
    p.add_argument("--only-new", action="store_true",
                   help="write only the new music, without the primer before it")
    p.add_argument("--num-samples", type=_positive_int, default=1, metavar="K",
                   help="pieces composed in parallel (default: 1)")
    p.add_argument("--wav", action="store_true", help="also render each piece to WAV")
    p.add_argument("--soundfont", metavar="FILE.sf2", default=None,
                   help="General MIDI soundfont for --wav (default: $BIAX_SOUNDFONT, else pretty_midi's own)")
    p.set_defaults(func=_run_generate)


def _run_generate(args):
    from biax_keras.compose import compose
    from biax_keras.sampling import SamplingControls

    controls = SamplingControls(temperature=args.temperature,
                                conservativity=args.conservativity, adaptive=args.adaptive)
    result = compose(
        args.model, args.out, steps=args.steps, seconds=args.seconds, bpm=args.bpm,
        seed=args.seed, controls=controls, primer_path=args.primer,
        primer_steps=args.primer_steps, primer_seconds=args.primer_seconds,
        only_new=args.only_new, num_samples=args.num_samples, wav=args.wav,
        soundfont=args.soundfont)
    if not args.json:
        for piece in result["pieces"]:
            wav = f" and {piece['wav']}" if "wav" in piece else ""
            print(f"wrote {piece['midi']}{wav}: {result['seconds']:.1f} s at {result['bpm']:g} bpm, "
                  f"{piece['notes']} notes")
    return result


# ----------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------


def _add_export(subparsers):
    p = subparsers.add_parser(
        "export",
        help="write a SavedModel with score and generate signatures",
        description=(
            "Writes a SavedModel that TensorFlow alone (or TF Serving) can load, with "
            "signatures score, generate and generate_from_primer; see "
            "biax_keras/export.py for their inputs and outputs."
        ),
    )
    p.add_argument("--model", required=True, metavar="PATH", help="a .keras file or a run folder")
    p.add_argument("--out", required=True, metavar="DIR", help="the SavedModel folder to create")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    p.set_defaults(func=_run_export)


def _run_export(args):
    import biax_keras
    from biax_keras import export

    if os.path.exists(args.out) and not args.overwrite:  # before the (slow) loading
        raise UserError(f"{args.out} already exists; remove it, choose another --out, "
                        f"or add --overwrite")
    model = biax_keras.load_model(args.model)
    result = export.export_model(model, args.out, overwrite=args.overwrite)
    if not args.json:
        print(f"wrote {result['out']} (signatures: {', '.join(result['signatures'])})")
    return result


# ----------------------------------------------------------------------------
# render
# ----------------------------------------------------------------------------


def _add_render(subparsers):
    from biax_keras import render

    p = subparsers.add_parser(
        "render",
        help="MIDI files to WAV and piano-roll PNG",
        description=(
            "Renders MIDI files, or every MIDI file in folders, to WAV and/or a "
            "piano-roll PNG, written next to each file or under --out-dir. WAV is played "
            "through a General MIDI soundfont (pretty_midi's TimGM6mb.sf2 unless "
            "--soundfont or $BIAX_SOUNDFONT names another) by the midirenderer wheel; "
            "--synth fluidsynth uses FluidSynth instead, and sine waves are the last "
            "resort, with a warning. --compare draws two or more files one above the "
            "other in one PNG. Files that cannot be read are skipped and listed."
        ),
    )
    p.add_argument("paths", nargs="+", metavar="MIDI", help="MIDI files or folders")
    p.add_argument("--to", action="append", choices=render.FORMATS, default=None,
                   help="what to write; repeat for both (default: wav)")
    p.add_argument("--compare", action="store_true",
                   help="one PNG of the files' piano rolls one above the other (A_vs_B.png)")
    p.add_argument("--out-dir", default=None, metavar="DIR",
                   help="where to write (default: next to each MIDI file)")
    p.add_argument("--synth", choices=render.SYNTHS, default="auto",
                   help="soundfont (midirenderer), fluidsynth or sine; auto: the first "
                        "installed of these (default: auto)")
    p.add_argument("--soundfont", metavar="FILE.sf2", default=None,
                   help="General MIDI soundfont (default: $BIAX_SOUNDFONT, else pretty_midi's own)")
    p.set_defaults(func=_run_render)


def _run_render(args):
    from biax_keras import render

    if args.compare:
        if args.to:
            raise UserError("--compare writes one PNG; leave out --to")
        result = render.compare(args.paths, out_dir=args.out_dir)
        if not args.json:
            print(f"wrote {result['png']}")
        return result
    result = render.render(args.paths, to=args.to or ("wav",), out_dir=args.out_dir,
                           synth=args.synth, soundfont=args.soundfont)
    if not args.json:
        for entry in result["written"]:
            outputs = " and ".join(entry[f] for f in render.FORMATS if f in entry)
            print(f"wrote {outputs}")
        if result["skipped"]:
            print(f"skipped {len(result['skipped'])} file(s):")
            for item in result["skipped"]:
                print(f"  {item['path']}: {item['reason']}")
    return result


# ----------------------------------------------------------------------------
# studio
# ----------------------------------------------------------------------------


def _add_studio(subparsers):
    from biax_keras import studio

    p = subparsers.add_parser(
        "studio",
        help="a local page to compose, listen and download",
        description=(
            "Serves a page on http://127.0.0.1:PORT/ where one picks a model, sets "
            "length, temperature, conservativity, seed and an optional primer MIDI, "
            "and composes: the page shows the piano roll, plays the piece and offers "
            "the MIDI and WAV; Continue extends the current piece. The shipped models "
            "are offered, with --model first. Ctrl+C stops it and removes its "
            "temporary folder."
        ),
    )
    p.add_argument("--model", metavar="PATH", default=None,
                   help="a run folder, .keras file or SavedModel to offer first")
    p.add_argument("--port", type=_port, default=studio.DEFAULT_PORT,
                   help=f"port to listen on; 0 picks a free one (default: {studio.DEFAULT_PORT})")
    p.add_argument("--host", default=studio.DEFAULT_HOST,
                   help="address to listen on (default: 127.0.0.1, this machine only)")
    p.set_defaults(func=_run_studio)


def _port(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is from 0 to 65535, got {value}")
    return value


def _run_studio(args):
    from biax_keras import studio

    def ready(url):
        print(f"biax studio: {url} (Ctrl+C to stop)", flush=True)

    def stop(signum, frame):
        raise KeyboardInterrupt

    import signal

    # `kill` cleans up as Ctrl+C does, also when started in the background
    # (where a shell leaves SIGINT ignored).
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        studio.serve(args.model, host=args.host, port=args.port, ready=ready)
    except KeyboardInterrupt:
        pass
    return {"stopped": True}


# ----------------------------------------------------------------------------
# benchmark
# ----------------------------------------------------------------------------

_BENCHMARKS = {
    # name -> module in biax_keras.bench with a `run(args) -> dict` and `add_arguments(parser)`
    "data": "biax_keras.bench.data",
    "train": "biax_keras.bench.train",
    "generate": "biax_keras.bench.generate",
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
    _add_train,
    _add_evaluate,
    _add_generate,
    _add_export,
    _add_benchmark,
    _add_render,
    _add_studio,
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


def _quiet_tensorflow(verbose=False):
    # 3 keeps TensorFlow's C++ errors too off the terminal (a missing CUDA
    # driver, oneDNN's fallbacks); real failures still reach the user as
    # Python exceptions. --verbose shows everything.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    # note_seq imports pydub, which warns at import that ffmpeg is missing;
    # nothing here decodes audio through it.
    warnings.filterwarnings("ignore", message="Couldn't find ffmpeg", category=RuntimeWarning)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


# Lines TensorFlow's C++ start-up prints before its logging is set up, which
# TF_CPP_MIN_LOG_LEVEL cannot silence: which CPU features and GPU libraries it
# found. Nothing a user of this tool acts on.
_STARTUP_NOISE = re.compile(
    r"(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} [\d:. ]+\d+ (port|cudart_stub|cpu_feature_guard)\.cc:\d+\])")


def _import_tensorflow_quietly():
    """Imports TensorFlow with its start-up lines kept off stderr (others pass)."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode("utf-8", "replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not _STARTUP_NOISE.match(line)))


def _needs_tensorflow(args):
    # Rendering MIDI, or comparing two folders of it (evaluate without
    # --model), never touches it.
    if args.command == "render":
        return False
    return args.command != "evaluate" or getattr(args, "model", None) is not None


def main(argv=None):
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command != "prepare" or args.runner is None:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.pipeline_options = extra  # for the Beam runner
    _quiet_tensorflow(args.verbose)
    if not args.verbose and _needs_tensorflow(args):
        _import_tensorflow_quietly()
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
