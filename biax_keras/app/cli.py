"""The `biax` command line: prepare, train, generate, evaluate, export, benchmark, render, studio.

Every subcommand is a pair: `_add_<name>(subparsers)` declares its flags and
`_run_<name>(args)` does the work and returns a JSON-able dict, which `--json`
prints as one object on stdout (logs go to stderr). Exit codes: 0 success,
2 user error (one line on stderr), 1 a bug.

What can be checked without TensorFlow (paths, files that must or must not
exist, flags that go together) is checked by `_check_<name>(args)` before
TensorFlow is imported, so a typo costs a fraction of a second rather than
TensorFlow's start-up. Every command creates the folders its outputs go into.
"""

import argparse
import contextlib
import json
import logging
import math
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

import biax_keras
from biax_keras.errors import UserError
from biax_keras.train import runs

log = logging.getLogger("biax_keras")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default in --help, except where there is none to show."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.help is None \
                or "default" in action.help:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit code 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

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


def _number(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _positive_float(text):
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _non_negative_float(text):
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _fraction(text):
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
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
    p.add_argument("source", metavar="SOURCE", help="MIDI folder or file, TFRecord, bach, or .json/.pickle")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--steps-per-quarter", type=_positive_int, default=None,
                   help="time steps per quarter note (default: 4, 16th notes, for MIDI; for a "
                        "JSB .json/.pickle file its own, read from its name, e.g. "
                        "jsb-chorales-quarter.json: 1)")
    p.add_argument("--lowest-pitch", type=int, default=24, help="MIDI pitch of the lowest note kept")
    p.add_argument("--num-notes", type=_positive_int, default=78, help="number of notes kept")
    p.add_argument("--split", default="0.8,0.1,0.1",
                   help="train,valid,test fractions (ignored when the source has its own split)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split")
    p.add_argument("--style", default=None, metavar="NAME",
                   help="the style its pieces are tagged with, for a model trained on several "
                        "datasets (default: the source's name, e.g. piano-midi-de)")
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
    p.add_argument("--overwrite", action="store_true",
                   help="replace a prepared dataset already in DIR")
    p.set_defaults(func=_run_prepare, check=_check_prepare, pipeline_options=[])


def _check_prepare(args):
    from biax_keras.data import preparation, records

    if args.source != "bach" and not os.path.exists(args.source):
        raise UserError(f"{args.source} does not exist; give a folder of MIDI files, a MIDI file, "
                        f"a TFRecord of NoteSequences, `bach` or a JSB .json/.pickle")
    records.check_out(args.out, args.overwrite)
    preparation.check_request(args.source, args.steps_per_quarter, args.split)
    if args.style is not None:
        from biax_keras.style_names import check_style_name

        check_style_name(args.style)


def _run_prepare(args):
    from biax_keras import data

    settings = dict(
        split=args.split,
        steps_per_quarter=args.steps_per_quarter,
        lowest_pitch=args.lowest_pitch,
        num_notes=args.num_notes,
        seed=args.seed,
        workers=args.workers,
        max_steps=args.max_steps,
        limit=args.limit,
        shards=args.shards,
        overwrite=args.overwrite,
        style=args.style,
    )
    if args.runner is not None:
        from biax_keras.data import beam

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
            "(TensorBoard), history.csv, checkpoints/best.keras and, at the end, "
            "model.keras with the weights of the best epoch. Running the same command "
            "on an unfinished RUN resumes it. The note range and resolution come from "
            "the data. Config files: training/configs/*.json; flags override them. "
            "Several --data train one model of several styles, one per dataset (the style "
            "`biax prepare --style` gave it), each drawn from by its --data-weights share "
            "and early-stopped on the mean of their valid NLLs."
        ),
    )
    p.add_argument("--data", required=True, metavar="DIR", action="append",
                   help="a prepared dataset folder; give it again for each dataset of a "
                        "style model")
    p.add_argument("--data-weights", type=_weights, default=None, metavar="W,W,...",
                   help="with several --data, each one's share of the training windows "
                        "(default: equal shares, unless --config sets train.data_weights)")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder (new, or unfinished to resume)")
    p.add_argument("--config", metavar="FILE", help='JSON {"model": {...}, "train": {...}}')
    from biax_keras.train.config import TrainConfig

    # None: the --config file's value, else TrainConfig's default (shown).
    def default(name, unset="none"):
        value = getattr(TrainConfig, name)
        return f"default: {unset if value is None else value}, unless --config sets it"

    p.add_argument("--epochs", type=_positive_int,
                   help=f"epochs to train, counted across resumes ({default('epochs')})")
    p.add_argument("--batch-size", type=_positive_int,
                   help=f"windows per batch ({default('batch_size')})")
    p.add_argument("--window", type=_positive_int,
                   help=f"steps predicted per training window ({default('window')})")
    p.add_argument("--steps-per-epoch", type=_positive_int,
                   help="batches per epoch (default: one window of every train piece)")
    p.add_argument("--learning-rate", type=_positive_float,
                   help=f"Adam's learning rate ({default('learning_rate')})")
    p.add_argument("--patience", type=_positive_int,
                   help="stop after this many epochs without a better valid NLL "
                        f"({default('patience', 'none, every epoch is trained')})")
    p.add_argument("--seed", type=int,
                   help=f"seed of the weights, dropout and data stream ({default('seed')})")
    p.add_argument("--lr-decay-patience", type=_positive_int, metavar="N",
                   help="halve the learning rate (train.lr_decay_factor) after N epochs "
                        "without a better valid NLL (default: never)")
    p.add_argument("--weight-decay", type=_non_negative_float,
                   help="decoupled weight decay, as AdamW's (default: 0)")
    p.add_argument("--ema", type=_fraction, metavar="DECAY",
                   help="keep a moving average of the weights with this decay (e.g. 0.999) and "
                        "validate and save the average (default: off)")
    p.add_argument("--transpose", action=argparse.BooleanOptionalAction, default=None,
                   help="random transposition of training windows (default: on)")
    p.add_argument("--init", metavar="MODEL.keras",
                   help="start from this trained model's weights (and, from a checkpoint such as "
                        "RUN/checkpoints/best.keras, its optimizer's state: moments, averaged "
                        "weights, step count)")
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
    p.add_argument("--overwrite", action="store_true",
                   help="discard what RUN holds (a finished run, or one on other data) and start again")
    p.set_defaults(func=_run_train, check=_check_train)


def _check_train(args):
    from biax_keras.data import records

    for folder in args.data:
        if not records.is_prepared(folder):
            raise UserError(f"{folder} is not a prepared dataset (no meta.json); "
                            f"run `biax prepare SOURCE --out {folder}` first")
    if len(set(map(os.path.abspath, args.data))) != len(args.data):
        raise UserError("the same --data is given twice; give each dataset once")
    if args.data_weights is not None and len(args.data_weights) != len(args.data):
        raise UserError(f"--data-weights gives {len(args.data_weights)} weights for "
                        f"{len(args.data)} --data; give one per dataset")
    if args.config is not None and not os.path.isfile(args.config):
        raise UserError(f"cannot read config {args.config}: no such file")
    if args.init is not None and not os.path.isfile(args.init):
        raise UserError(f"--init {args.init} does not exist (give a .keras file written by biax train)")
    runs.check_out(args.out, args.data[0] if len(args.data) == 1 else args.data, args.overwrite)


def _weights(text):
    """`--data-weights 1,2.5`: positive numbers separated by commas."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") \
            from None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"the weights must be positive, got {text!r}")
    return values


def _run_train(args):
    from biax_keras import train
    from biax_keras.train import distribute

    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "window": args.window,
                 "steps_per_epoch": args.steps_per_epoch, "learning_rate": args.learning_rate,
                 "patience": args.patience, "seed": args.seed,
                 "image_every": args.image_every, "sample_every": args.sample_every,
                 "lr_decay_patience": args.lr_decay_patience, "weight_decay": args.weight_decay,
                 "ema": args.ema, "transpose": args.transpose,
                 "data_weights": args.data_weights}
    data = args.data[0] if len(args.data) == 1 else args.data
    report = train.train(data, args.out, args.config, strategy=args.strategy,
                         overrides=overrides, init=args.init, overwrite=args.overwrite,
                         peer_timeout_s=args.peer_timeout or distribute.DEFAULT_PEER_TIMEOUT_S)
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
            "accuracy on a prepared folder (one --split of it), a JSB-format "
            ".json/.pickle (one --split of it) or MIDI files (a file or a folder, "
            "scored whole). Data the model cannot be scored on (another time "
            "resolution, notes outside its range, no articulation for a model "
            "that learned it) is refused, not scored. "
            "Music statistics: --generated DIR --reference DIR compares generated "
            "MIDI with a collection (MIDI files, folders searched recursively, or "
            "one --reference-split of a JSB-format .json/.pickle): note onsets and "
            "notes sounding per step, silence, pitch range, histograms of pitch "
            "classes (also with every piece turned to its key), vertical intervals, "
            "note lengths and polyphony with their KL divergences, share of notes "
            "in key, the longest passage of a generated piece copied from the "
            "collection in any transposition, a two-sample test (a classifier's "
            "held-out accuracy at telling windows of the two apart), and which of "
            "these lie within the bounds of music that looks like its collection."
        ),
    )
    likelihood = p.add_argument_group("likelihood (--model)")
    likelihood.add_argument("--model", metavar="PATH", help="a .keras file, a run folder or a SavedModel")
    likelihood.add_argument("--data", metavar="SRC",
                            help="a prepared folder, a JSB-format .json/.pickle, or a MIDI file or folder")
    likelihood.add_argument("--split", choices=("train", "valid", "test"), default=None,
                            help="which split of a prepared folder or JSB file to score (default: valid)")
    likelihood.add_argument("--per-piece", action="store_true",
                            help="also score every piece on its own (its name, steps, frame NLL "
                                 "and accuracy), to see which pieces the figure comes from")
    likelihood.add_argument("--style", default=None, metavar="NAME[=W,...]",
                            help="a style model's style to score in (default: the data's own, "
                                 "by its prepared style or its file's name)")
    music = p.add_argument_group("music statistics (--generated)")
    music.add_argument("--generated", metavar="DIR", help="folder (or file) of generated MIDI")
    music.add_argument("--reference", metavar="DIR",
                       help="folder (or file) of real MIDI to compare with, or a JSB-format "
                            ".json/.pickle")
    music.add_argument("--reference-split", choices=("train", "valid", "test"), default=None,
                       help="the split of a JSB-format --reference (default: valid)")
    music.add_argument("--plot", metavar="FILE.png",
                       help="also draw the histograms side by side into this PNG file")
    p.add_argument("--steps-per-quarter", type=_positive_int, default=None,
                   help="time steps per quarter note: of the MIDI compared (default: 4, 16th notes, "
                        "or a JSB --reference's own), or of a JSB .json/.pickle given to --data "
                        "(default: read from its name, e.g. jsb-chorales-quarter.json: 1)")
    p.set_defaults(func=_run_evaluate, check=_check_evaluate)


def _check_evaluate(args):
    # The two modes share nothing but the subcommand: each branch checks its own flags.
    if args.model is not None and args.generated is not None:
        raise UserError("give either --model (likelihood) or --generated (music statistics), not both")
    if args.model is not None:
        if args.reference is not None or args.plot is not None or args.reference_split:
            raise UserError("--reference, --reference-split and --plot go with --generated, not with --model")
        if args.data is None:
            raise UserError("--model needs --data SRC (a prepared folder, a JSB-format "
                            ".json/.pickle, or a MIDI file or folder)")
        biax_keras.model_file(args.model)
        if not os.path.exists(args.data):
            raise UserError(f"--data {args.data} does not exist; give a prepared folder, a "
                            f"JSB-format .json/.pickle, or a MIDI file or folder")
        from biax_keras.app import evaluate

        evaluate.check_request(args.model, args.data, args.split, args.steps_per_quarter,
                               args.style)
        return
    if args.generated is not None:
        if args.data is not None or args.split is not None or args.per_piece:
            raise UserError("--data, --split and --per-piece go with --model; compare MIDI "
                            "folders with --generated and --reference")
        if args.reference is None:
            raise UserError("--generated needs --reference DIR, the real music to compare with")
        if args.reference_split is not None and not args.reference.lower().endswith(
                (".json", ".pickle", ".pkl")):
            raise UserError("--reference-split is for a JSB-format .json/.pickle reference; "
                            "a folder of MIDI files is compared whole")
        for flag, path in (("--generated", args.generated), ("--reference", args.reference)):
            if not os.path.exists(path):
                raise UserError(f"{flag} {path} does not exist; give a folder of MIDI files")
        if args.plot is not None:
            if not args.plot.lower().endswith(".png"):
                raise UserError(f"--plot must name a .png file, got {args.plot}")
            _check_output_folder(args.plot, "--plot")
        return
    raise UserError(
        "nothing to evaluate: give --model PATH --data SRC (likelihood) "
        "or --generated DIR --reference DIR (music statistics)"
    )


def _run_evaluate(args):
    if args.model is not None:
        return _evaluate_likelihood(args)
    return _evaluate_music(args)


def _evaluate_likelihood(args):
    from biax_keras.app import evaluate

    result = evaluate.evaluate_model(args.model, args.data, split=args.split,
                                     steps_per_quarter=args.steps_per_quarter,
                                     per_piece=args.per_piece, style=args.style)
    if not args.json:
        print(evaluate.format_scores(result))
    return result


def _evaluate_music(args):
    from biax_keras.music import plots, statistics

    result = statistics.compare_sets(
        args.generated, args.reference, steps_per_quarter=args.steps_per_quarter,
        reference_split=args.reference_split)
    if args.plot is not None:
        plots.plot_comparison(result["generated"], result["reference"], args.plot)
        result["plot"] = args.plot
    if not args.json:
        print(statistics.format_comparison(result))
        if args.plot is not None:
            print(f"wrote {args.plot}")
    return result


def _check_output_folder(path, flag):
    """The folder `path` goes into must be a folder or creatable (it is created when written)."""
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise UserError(f"cannot write {flag} {path}: {folder} is a file, not a folder")


# ----------------------------------------------------------------------------
# generate
# ----------------------------------------------------------------------------


def _add_generate(subparsers):
    from biax_keras.sampling_controls import SamplingControls

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
            "as `biax render` does (a General MIDI piano); the MIDI is written "
            "first, whatever happens to the audio."
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
    SamplingControls.add_arguments(p)
    p.add_argument("--style", default=None, metavar="NAME[=W,...]",
                   help="a style model's style, or a blend of its styles by weight, e.g. "
                        "piano_midi_de=0.7,jsb_chorales=0.3 (default: its first style)")
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
                   help="pieces composed in parallel")
    p.add_argument("--wav", action="store_true", help="also render each piece to WAV")
    p.add_argument("--soundfont", metavar="FILE.sf2", default=None,
                   help="General MIDI soundfont for --wav (default: $BIAX_SOUNDFONT, else pretty_midi's own)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace MIDI and WAV files that already exist (refused otherwise)")
    p.set_defaults(func=_run_generate, check=_check_generate)


def _check_generate(args):
    from biax_keras.generation import compose
    from biax_keras.sampling_controls import SamplingControls

    biax_keras.model_file(args.model)
    _check_output_folder(compose.output_paths(args.out, args.num_samples)[0], "--out")
    if args.primer is not None and not os.path.isfile(args.primer):
        raise UserError(f"primer {args.primer} does not exist or is not a file")
    if args.soundfont is not None and not os.path.isfile(args.soundfont):
        raise UserError(f"--soundfont {args.soundfont} does not exist")
    from biax_keras.generation.styles import style_weights

    config = biax_keras.model_config(args.model)
    controls = SamplingControls.from_arguments(
        args, config, style_weights(config, args.style))
    args.job = compose.plan(
        args.model, args.out, steps=args.steps, seconds=args.seconds, bpm=args.bpm,
        seed=args.seed, controls=controls, primer_path=args.primer,
        primer_steps=args.primer_steps, primer_seconds=args.primer_seconds,
        only_new=args.only_new, num_samples=args.num_samples, wav=args.wav,
        soundfont=args.soundfont, overwrite=args.overwrite, style=args.style)


def _run_generate(args):
    from biax_keras.generation import compose

    result = compose.write_files(args.job)
    if not args.json:
        for piece in result["pieces"]:
            wav = f" and {piece['wav']}" if piece.get("wav") else ""
            style = ""
            if result.get("style"):
                from biax_keras.generation.styles import words

                style = " in " + words(result["style"])
            print(f"wrote {piece['midi']}{wav}: {result['seconds']:.1f} s at {result['bpm']:g} bpm, "
                  f"{piece['notes']} notes{style}")
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
    p.add_argument("--out", required=True, metavar="DIR",
                   help="the SavedModel folder to create (with its parent folders)")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    p.set_defaults(func=_run_export, check=_check_export)


def _check_export(args):
    biax_keras.model_file(args.model)
    if os.path.exists(args.out) and not args.overwrite:
        raise UserError(f"{args.out} already exists; remove it, choose another --out, "
                        f"or add --overwrite")
    _check_output_folder(args.out, "--out")


def _run_export(args):
    from biax_keras.generation import export

    model = biax_keras.load_model(args.model)
    result = export.export_model(model, args.out, overwrite=args.overwrite)
    if not args.json:
        print(f"wrote {result['out']} (signatures: {', '.join(result['signatures'])})")
    return result


# ----------------------------------------------------------------------------
# render
# ----------------------------------------------------------------------------


def _add_render(subparsers):
    from biax_keras.app import render as render_command
    from biax_keras.music import audio

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
    p.add_argument("--to", action="append", choices=render_command.FORMATS, default=None,
                   help="what to write; repeat for both (default: wav)")
    p.add_argument("--compare", action="store_true",
                   help="one PNG of the files' piano rolls one above the other (A_vs_B.png)")
    p.add_argument("--out-dir", default=None, metavar="DIR",
                   help="where to write (default: next to each MIDI file)")
    p.add_argument("--synth", choices=audio.SYNTHS, default="auto",
                   help="soundfont (midirenderer), fluidsynth or sine; auto: the first "
                        "installed of these (default: auto)")
    p.add_argument("--soundfont", metavar="FILE.sf2", default=None,
                   help="General MIDI soundfont (default: $BIAX_SOUNDFONT, else pretty_midi's own)")
    p.set_defaults(func=_run_render)


def _run_render(args):
    from biax_keras.app import render as render_command

    if args.compare:
        if args.to:
            raise UserError("--compare writes one PNG; leave out --to")
        result = render_command.compare(args.paths, out_dir=args.out_dir)
        if not args.json:
            print(f"wrote {result['png']}")
        return result
    result = render_command.render(args.paths, to=args.to or ("wav",), out_dir=args.out_dir,
                           synth=args.synth, soundfont=args.soundfont)
    if not args.json:
        for entry in result["written"]:
            outputs = " and ".join(entry[f] for f in render_command.FORMATS if f in entry)
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
    from biax_keras.app import studio

    p = subparsers.add_parser(
        "studio",
        help="a local page to compose, listen and download",
        description=(
            "Serves a page on http://127.0.0.1:PORT/ where one picks a model, sets "
            "length, the sampling controls of biax generate, seed and an optional primer MIDI, "
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
    from biax_keras.app import studio

    def ready(url):
        print(f"biax studio: {url} (Ctrl+C to stop)", flush=True)

    import signal

    # `kill` cleans up as Ctrl+C does (`main` handles SIGTERM), also when
    # started in the background, where a shell leaves SIGINT ignored.
    signal.signal(signal.SIGINT, _raise_interrupt)
    try:
        studio.serve(args.model, host=args.host, port=args.port, ready=ready)
    except KeyboardInterrupt:
        pass
    return {"stopped": True}


# ----------------------------------------------------------------------------
# benchmark
# ----------------------------------------------------------------------------

# The speed benchmarks live with the others, in the source tree's
# benchmarks/speed/ (each a module with `add_arguments(parser)` and
# `run(args) -> dict`); `biax benchmark` runs them from a checkout.
_SOURCE_TREE = Path(__file__).resolve().parents[2]
_BENCHMARKS = ("data", "train", "generate")


def _benchmark_module(name):
    """`benchmarks/speed/NAME.py` of the source tree, imported, or None."""
    import importlib

    if not (_SOURCE_TREE / "benchmarks" / "speed" / f"{name}.py").is_file():
        return None
    if str(_SOURCE_TREE) not in sys.path:
        sys.path.insert(0, str(_SOURCE_TREE))
    return importlib.import_module(f"benchmarks.speed.{name}")


def _add_benchmark(subparsers):
    p = subparsers.add_parser("benchmark", help="measure speed: " + ", ".join(_BENCHMARKS))
    what = p.add_subparsers(dest="what", required=True, parser_class=_Parser)
    for name in _BENCHMARKS:
        q = what.add_parser(name, help=f"{name} benchmark (benchmarks/speed/{name}.py)")
        q.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        module = _benchmark_module(name)
        if module is not None:
            module.add_arguments(q)
        q.set_defaults(func=_run_benchmark)


def _run_benchmark(args):
    module = _benchmark_module(args.what)
    if module is None:
        raise UserError(f"biax benchmark runs benchmarks/speed/{args.what}.py of a source "
                        f"checkout, and this installation has none; run it from a clone of "
                        f"biax_keras")
    result = module.run(args)
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
    parser.add_argument("--version", action="version", version=f"biax {biax_keras.__version__}")
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


# XLA compiles the sampler in seconds at each start (most of a short `biax
# generate`); TensorFlow can keep what it compiled on disk and reuse it when
# the same function is compiled again. Set BIAX_XLA_CACHE to a folder to put
# it elsewhere, or to an empty string to turn it off.
XLA_CACHE_ENV = "BIAX_XLA_CACHE"
_XLA_CACHE_FLAG = "--tf_xla_persistent_cache_directory"


def xla_cache_folder():
    """Where `biax` keeps compiled XLA programs, or None when turned off."""
    folder = os.environ.get(XLA_CACHE_ENV)
    if folder is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        try:
            from importlib.metadata import version

            tensorflow = version("tensorflow")
        except Exception:  # any install without its metadata: one shared folder
            tensorflow = "unknown"
        # Programs compiled by one TensorFlow are never handed to another.
        folder = os.path.join(base, "biax_keras", f"xla-tf{tensorflow}")
    return folder or None


def _persistent_xla_cache():
    """Points TensorFlow's XLA compilation cache at `xla_cache_folder()` (before its import)."""
    flags = os.environ.get("TF_XLA_FLAGS", "")
    folder = xla_cache_folder()
    if folder is None or _XLA_CACHE_FLAG in flags or "tensorflow" in sys.modules:
        return
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:  # a read-only home: compile every time, as without the cache
        return
    os.environ["TF_XLA_FLAGS"] = f"{flags} {_XLA_CACHE_FLAG}={folder}".strip()


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


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def _stop_on_sigterm():
    """`kill` and `timeout` send SIGTERM: stop as Ctrl-C stops, removing what is half-written.

    Only in the main thread (where Python allows signal handlers); the
    previous handler is back when the command ends.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv=None):
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command != "prepare" or args.runner is None:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.pipeline_options = extra  # for the Beam runner
    _quiet_tensorflow(args.verbose)
    logging.basicConfig(
        level=logging.INFO if args.verbose or not args.json else logging.WARNING,
        stream=sys.stderr,
        format="%(message)s",
    )
    with _stop_on_sigterm():
        return _run(args)


def _run(args):
    try:
        if getattr(args, "check", None) is not None:
            args.check(args)  # before TensorFlow's start-up
        if _needs_tensorflow(args):
            # The studio promises to write nothing outside its own temporary
            # folder, so it compiles afresh rather than keep a cache at home.
            if args.command != "studio":
                _persistent_xla_cache()
            if not args.verbose:
                _import_tensorflow_quietly()
        result = args.func(args)
    except UserError as e:
        sys.stderr.write(f"biax {args.command}: error: {e}\n")
        return 2
    except KeyboardInterrupt as e:
        # An `Interrupted` names what was finished before the interruption.
        sys.stderr.write(f"biax {args.command}: interrupted{'; ' + str(e) if str(e) else ''}\n")
        return 130
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
