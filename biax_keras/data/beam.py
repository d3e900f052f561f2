"""`biax prepare --runner NAME`: the prepare step as an Apache Beam pipeline.

The same per-file conversion as `data.prepare` (the same readers, the same
time and memory bound for each file, the same skip reasons), run by Beam so
that a collection too large for one machine is read by many: Dataflow,
Flink, Spark or any other Beam runner, or the DirectRunner on one machine.

    from biax_keras.data import beam
    report = beam.prepare("lakh/", "data/lakh", runner="DirectRunner",
                          pipeline_options=["--direct_num_workers=4"])

The pipeline:

    pieces (listed, split by the launcher) -> Reshuffle -> ReadPieces
      -> records: written as they come to part files, one per shard a
         bundle touches -> GroupByKey of the part names -> joined into shards
      -> per piece: one line of outcome (steps, notes dropped or skip reason)

No step holds more than a bundle's pieces in memory: only file names and
outcome lines go through Beam's shuffle, so memory stays flat however large
the collection (a runner such as the DirectRunner keeps shuffled data in
memory).

The launcher lists the source and splits it exactly as `data.prepare` does,
then reads the outcome lines back to write report.json, lengths.json and
meta.json. Every worker and the launcher must see SOURCE and `--out` at the
same paths (one machine, or a shared file system).

`--runner DirectRunner` runs on Beam's FnApiRunner, the engine the
DirectRunner itself uses for batch pipelines, in multi-processing mode with
one process per core unless the options say otherwise. (The DirectRunner
would first try Beam's Prism runner, which it downloads from GitHub: this
package downloads nothing at run time.)

Needs the `beam` extra: `pip install 'biax_keras[beam]'`.
"""

import json
import logging
import shutil
import time
from pathlib import Path

from biax_keras import data
from biax_keras.data import preparation, readers, records
from biax_keras.errors import UserError

log = logging.getLogger(__name__)

DIRECT_RUNNERS = ("directrunner", "direct")
OUTCOMES = ".outcomes"
# A reader process stuck in C code ignores its own alarm; this much longer,
# it is ended from outside.
_KILL_GRACE_S = 10.0


def _import_beam():
    try:
        import apache_beam
    except ImportError:
        raise UserError("--runner needs Apache Beam: pip install 'biax_keras[beam]' "
                        "(or leave out --runner to prepare with local processes)") from None
    return apache_beam


def make_runner(name):
    """A Beam runner by name, checked before anything is read.

    Args:
        name: a Beam runner name (DirectRunner, DataflowRunner, FlinkRunner,
            SparkRunner, PortableRunner, ... or a dotted class path).

    Returns:
        A `PipelineRunner`.

    Raises:
        UserError: Beam is missing, the name is unknown, or the runner needs
            a Beam extra that is not installed.
    """
    _import_beam()
    if name.lower() in DIRECT_RUNNERS:
        from apache_beam.runners.portability.fn_api_runner import fn_runner

        return fn_runner.FnApiRunner()
    from apache_beam.options.pipeline_options import StandardOptions
    from apache_beam.runners.runner import create_runner

    known = ", ".join(sorted(path.rsplit(".", 1)[1] for path in StandardOptions.ALL_KNOWN_RUNNERS))
    try:
        return create_runner(name)
    except ValueError:
        raise UserError(f"unknown Beam runner {name!r}; known runners: {known}") from None
    except (ImportError, AttributeError) as e:
        raise UserError(f"the Beam runner {name!r} cannot be loaded ({e})") from None


class _ReadPiece:
    """Beam DoFn body: one task -> its record and its outcome line.

    Each file is read in a child process of the Beam worker, started with the
    local path's bounds (`readers._init_worker`: a wall-clock alarm and an
    address-space limit), so that a file which hangs or swamps its reader
    costs one skip, as in `data.prepare`.
    """

    def __init__(self, settings, timeout_s):
        self.settings = settings
        self.timeout_s = timeout_s
        self.pool = None

    def setup(self):
        import concurrent.futures
        import multiprocessing

        self.pool = concurrent.futures.ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"),
            initializer=readers._init_worker, initargs=(self.timeout_s,))

    def teardown(self):
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None

    def _kill(self):
        for process in list(getattr(self.pool, "_processes", {}).values()):
            process.kill()
        self.teardown()
        self.setup()

    def read(self, task):
        import concurrent.futures
        from concurrent.futures.process import BrokenProcessPool

        index, name = task[0], task[1]
        try:
            future = self.pool.submit(readers._read_chunk, [task], self.settings)
            [result] = future.result(timeout=self.timeout_s + _KILL_GRACE_S)
            return result
        except BrokenProcessPool:
            self.teardown()
            self.setup()
            return index, name, "crashed the process reading it"
        except concurrent.futures.TimeoutError:
            self._kill()
            return index, name, f"took longer than {self.timeout_s:g} s to read"

    def process(self, element):
        """`(task, split)` -> `(record or None, outcome line)`."""
        task, split = element
        index, name, outcome = self.read(task)
        line = {"index": index, "name": name, "split": split}
        if isinstance(outcome, str):
            line["reason"] = outcome
            return None, json.dumps(line)
        roll, beat, dropped = outcome
        line.update(steps=int(roll.shape[0]), dropped=int(dropped))
        return records._example(name, roll, beat), json.dumps(line)


class _Parts:
    """The records of one bundle, written as it goes to one part file per
    shard it touches (so no runner ever holds a split in memory); the parts
    of each shard are joined into it at the end (TFRecord files join by
    concatenation: every record carries its own length and checksums)."""

    def __init__(self, folder, shards):
        self.folder = Path(folder)
        self.shards = shards
        self.writers = {}

    def write(self, split, name, record):
        import uuid

        import tensorflow as tf

        key = (split, records.shard_of(name, self.shards[split]))
        if key not in self.writers:
            path = self.folder / f"{key[0]}-{key[1]:05d}.{uuid.uuid4().hex}.part"
            self.writers[key] = (tf.io.TFRecordWriter(str(path)), path)
        self.writers[key][0].write(record)

    def close(self):
        """Close every part; returns `[(shard file name, part path), ...]`."""
        parts = []
        for (split, shard), (writer, path) in self.writers.items():
            writer.close()
            parts.append((records.shard_name(split, shard, self.shards[split]), str(path)))
        self.writers = {}
        return parts


def _join_parts(folder, shard, parts):
    """Concatenate a shard's part files into it, streaming, then remove them."""
    path = Path(folder) / shard
    with open(path, "wb") as out:
        for part in sorted(parts):
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out, 2**20)
    for part in parts:
        Path(part).unlink()


def _check_pipeline_options(flags):
    """Parse Beam's options the way Beam does, but refuse what it would only
    warn about: an unknown option or a bad value is one clear line."""
    import difflib

    from apache_beam.options import pipeline_options as po

    class Parser(po._BeamArgumentParser):
        def error(self, message):
            raise UserError(f"bad Beam pipeline option: {message}")

    parser = Parser(allow_abbrev=False)
    classes = {}
    for cls in po.PipelineOptions.__subclasses__():
        classes.setdefault(str(cls), cls)
    for cls in classes.values():
        cls._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(flags)
    if unknown:
        name = unknown[0].split("=", 1)[0]
        known = [o for action in parser._actions for o in action.option_strings]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(f"unknown Beam pipeline option {unknown[0]}{hint}; write Beam's "
                        f"options as --option=value")


def _pipeline_options(runner_name, pipeline_options, workers):
    from apache_beam.options.pipeline_options import PipelineOptions

    flags = list(pipeline_options or ())
    _check_pipeline_options(flags)
    given = PipelineOptions(flags).get_all_options(drop_default=True)
    extra = {}
    if "default_sdk_harness_log_level" not in given:
        extra["default_sdk_harness_log_level"] = "WARNING"  # each worker's own chatter
    if runner_name.lower() in DIRECT_RUNNERS:
        # Local work: one process per core, like the local path.
        if "direct_running_mode" not in given:
            extra["direct_running_mode"] = "multi_processing"
        if "direct_num_workers" not in given:
            extra["direct_num_workers"] = workers or readers._default_workers()
    return PipelineOptions(flags, **extra)


def prepare(source, out, *, runner, pipeline_options=(), workers=None, **settings):
    """`data.prepare` as an Apache Beam pipeline on `runner`.

    Args:
        source, out: as for `data.prepare`.
        runner: a Beam runner name (see `make_runner`).
        pipeline_options: Beam pipeline options, e.g.
            `["--direct_num_workers=4"]` or `["--project=P", "--region=R"]`.
        workers: DirectRunner processes when the options do not say
            (default: the CPU cores available).
        **settings: the other keyword arguments of `data.prepare`
            (steps_per_quarter, lowest_pitch, num_notes, split, seed,
            max_steps, limit, timeout_s, shards).

    Returns:
        The report, as `data.prepare` returns it (the same pieces read and
        skipped, with the same reasons, in the same order).

    Raises:
        UserError: as `data.prepare`; also Beam missing, an unknown runner or
            pipeline option, or a pipeline that failed.
    """
    beam = _import_beam()
    started = time.perf_counter()
    if not log.isEnabledFor(logging.DEBUG):
        # Beam narrates every bundle and worker at INFO; our progress is enough.
        logging.getLogger("apache_beam").setLevel(logging.WARNING)
    beam_runner = make_runner(runner)
    options = _pipeline_options(runner, pipeline_options, workers)
    job = preparation.plan(source, out, **settings)
    report, lengths = preparation.new_report(job), {split: [] for split in data.SPLITS}
    log.info("reading %d pieces from %s on %s into %s shards", len(job.found.tasks),
             job.found.label, runner, "/".join(str(job.shards[s]) for s in data.SPLITS))

    staging = preparation.staging_folder(job.out)
    try:
        reader = _ReadPiece(job.settings, job.timeout_s)
        parts_folder = staging / ".parts"
        parts_folder.mkdir()
        shards = dict(job.shards)

        class ReadPieces(beam.DoFn):
            def setup(self):
                reader.setup()

            def teardown(self):
                reader.teardown()

            def start_bundle(self):
                self.parts = _Parts(parts_folder, shards)

            def process(self, element):
                record, line = reader.process(element)
                if record is not None:
                    self.parts.write(element[1], element[0][1], record)
                yield line

            def finish_bundle(self):
                from apache_beam.transforms.window import GlobalWindows

                for part in self.parts.close():
                    yield beam.pvalue.TaggedOutput("parts", GlobalWindows.windowed_value(part))

        elements = [(task, job.assignment[task[1]]) for task in job.found.tasks]
        pipeline = beam.Pipeline(runner=beam_runner, options=options)
        outputs = (pipeline
                   | "List pieces" >> beam.Create(elements, reshuffle=False)
                   | "Spread over workers" >> beam.Reshuffle()
                   | "Read pieces" >> beam.ParDo(ReadPieces()).with_outputs("parts", main="lines"))
        (outputs.lines
         | "Write outcomes" >> beam.io.WriteToText(str(staging / OUTCOMES)))
        # Only file names go through the shuffle; the records stay in the parts.
        (outputs.parts
         | "Parts by shard" >> beam.GroupByKey()
         | "Join parts" >> beam.MapTuple(
             lambda shard, parts, folder=str(staging): _join_parts(folder, shard, list(parts))))
        try:
            result = pipeline.run()
            state = result.wait_until_finish()
        except UserError:
            raise
        except Exception as e:  # a runner's failure, in its own words
            message = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise UserError(f"the Beam pipeline on {runner} failed: {message}") from None
        if str(state) not in ("DONE", "PipelineState.DONE"):
            raise UserError(f"the Beam pipeline on {runner} ended {state}")

        _collect(staging, job, report, lengths)
        parts_folder.rmdir()  # empty: every part was joined
        preparation.rebalance(job, staging, report, lengths)
        preparation.finish(job, staging, report, lengths, started)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _collect(staging, job, report, lengths):
    """Fill the report from the pipeline's outcome lines, in task order, and
    make sure every shard exists (a runner may write none for an empty split)."""
    lines = []
    for path in staging.glob(OUTCOMES + "*"):
        with open(path) as f:
            lines.extend(json.loads(line) for line in f if line.strip())
        path.unlink()
    for line in sorted(lines, key=lambda line: line["index"]):
        outcome = line["reason"] if "reason" in line else (line["steps"], line["dropped"])
        preparation.add_outcome(report, lengths, line["name"], line["split"], outcome)
    for split, count in job.shards.items():
        for i in range(count):
            path = Path(staging) / records.shard_name(split, i, count)
            if not path.exists():
                path.touch()
