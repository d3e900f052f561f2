"""Training: `model.fit` on a prepared dataset, with the callbacks a run needs.

    from biax_keras import train
    report = train.train("data/bach", "runs/bach", "training/configs/tiny.json")

`train` is `model.fit` with the run's callbacks; the config is resolved
once (`config.resolve_config`) and handed on whole.

A *run folder* holds everything one training run makes:

    config.json        the resolved config ({"model": ..., "train": ...}); reusable as --config
    logs/NAME/         TensorBoard (NAME: the run folder's name): train/ and validation/
                       scalars (losses, metrics, learning rate), samples/ piano rolls
                       and audio, and the hparams session the HParams dashboard shows
                       with those metrics (`tensorboard --logdir RUN/logs`)
    history.csv        one row per finished epoch (the curves, without TensorBoard)
    epoch_times.csv    each finished epoch's wall seconds, training and validation
    checkpoints/best.keras   the model with the best valid frame NLL so far
    backup/            Keras BackupAndRestore state while the run is unfinished
    model.keras        the final model, written when training ends

Running the same command again on an unfinished run folder resumes from the
last backup (a run killed in the middle of an epoch redoes that epoch only).

A config file is JSON with two optional sections, each checked key by key:
`{"model": {...BiaxialConfig...}, "train": {...TrainConfig...}}`. The note
range, steps per quarter and play-only flag of the model come from the
prepared data's meta.json; a config that names other values is refused.
"""

import contextlib
import dataclasses
import json
import logging
import math
import shutil
import sys
import time
import typing
from pathlib import Path

from biax_keras.errors import UserError
from biax_keras.files import write_atomic
from biax_keras.nn.config import BiaxialConfig
from biax_keras.train import runs
from biax_keras.train.callbacks import (
    _ema_callbacks,
    _epoch_times,
    _history_rows,
    _plateau_so_far,
    _resumed,
)
from biax_keras.train.config import (
    TrainConfig,
    _config_with_init,
    config_to_dict,
    hparams_of,
    resolve_config,
)
from biax_keras.train.distribute import (
    DEFAULT_PEER_TIMEOUT_S,
    _build_from_a_local_batch,
    _logs_reducible_across_workers,
    _peer_watchdog,
    _worker,
    _workers,
    make_strategy,
)
from biax_keras.train.summaries import _first_window, roll_summaries, session_name

log = logging.getLogger(__name__)
RUN_FILES = runs.RUN_FILES
BEST_CHECKPOINT = runs.BEST_CHECKPOINT
WORKERS = runs.WORKERS


def _check_run_folder(run_dir, config_dict, data_dir, overwrite=False):
    """Check that the run folder is new or empty, or holds this run unfinished.

    Returns:
        `(initial_epoch, replace)`: the epoch the run resumes at (0 for a new
        run), and whether what the folder holds is to be discarded first
        (only with `overwrite`).
    """
    state = runs.check_out(run_dir, data_dir, overwrite)
    if state == "replace":
        return 0, True
    if state == "new":
        return 0, False
    resume_epoch = runs.backup_epoch(run_dir)
    if resume_epoch is None:
        log.info("%s holds a run that never finished an epoch: starting it again", run_dir)
        return 0, False
    try:
        previous = json.loads((Path(run_dir) / runs.CONFIG_FILE).read_text())
    except ValueError:
        previous = {}
    # A key the run folder lacks is one added since: it had its default.
    model_defaults = BiaxialConfig().to_dict()
    previous_model = previous.get("model")
    if isinstance(previous_model, dict):
        previous_model = {k: previous_model.get(k, model_defaults.get(k)) for k in config_dict["model"]}
    if previous_model != config_dict["model"]:
        raise UserError(f"{run_dir} holds an unfinished run of a different model config; "
                        "give a new --out, or the same config to resume it")
    defaults = TrainConfig().to_dict()
    changed = sorted(k for k, v in config_dict["train"].items()
                     if previous.get("train", {}).get(k, defaults.get(k)) != v)
    if changed:
        log.warning("resuming %s with changed train settings: %s", run_dir, ", ".join(changed))
    log.info("resuming %s at epoch %d", run_dir, resume_epoch + 1)
    return resume_epoch, False


def _write_json_atomic(path, value):
    write_atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(value, indent=2) + "\n"))


def save_model_atomic(model, path):
    """`model.save(path)`, written to a temporary file beside it and renamed."""
    write_atomic(path, model.save, suffix=".keras")


@contextlib.contextmanager
def _dtype_policy(name):
    import keras

    previous = keras.config.dtype_policy()
    if name:
        keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _mixed_policy():
    import tensorflow as tf

    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"


def train(data_dir, run_dir, config=None, strategy=None, overrides=None, init=None,
          callbacks=(), verbose=None, peer_timeout_s=DEFAULT_PEER_TIMEOUT_S,
          overwrite=False):
    """Train a biaxial model on a prepared dataset; resume an unfinished run.

    Args:
        data_dir: a folder written by `biax prepare` (`data.prepare`), or a
            list of them: a run on several datasets trains a style model,
            one style per dataset (their meta.json's `style`), each window
            drawn from dataset i with the share `train.data_weights[i]`
            (equal by default), early-stopped on the mean of the datasets'
            valid frame NLLs (see `data.make_mixed_dataset`).
        run_dir: the run folder (created; or an unfinished run to resume).
        config: None, a config file path, or a dict `{"model": ..., "train": ...}`.
        strategy: None (no strategy scope), a name from `STRATEGIES`, or a
            `tf.distribute.Strategy`.
        overrides: dict of train config keys replacing the config's (None
            values are ignored), e.g. from command-line flags.
        init: optional path of a `.keras` model to start from (fine-tuning):
            its network sizes replace the config's.
        callbacks: extra Keras callbacks, after the run's own.
        verbose: Keras progress output: 0 none, 1 progress bar, 2 one line per
            epoch; None picks 1 on a terminal, else 2.
        peer_timeout_s: under `multi_worker` with a cluster, a worker that
            waits this long for the others (to start, or for a step) ends
            with one line and exit code 2 (see `PeerWatchdog`).
        overwrite: discard a finished run in `run_dir`, or an unfinished one
            on another dataset, and start again (refused otherwise).

    The run's `model.keras` holds the weights of the epoch with the best
    valid frame NLL (those of `checkpoints/best.keras`), as Keras's
    `restore_best_weights` would; without validation, the last epoch's.

    Returns:
        A JSON-able report: run folder, model path, parameters, epochs
        (initial and final), the last epoch's metrics, best valid frame NLL
        and its epoch (`best_epoch`, counted from 1), seconds.

    Raises:
        UserError: not a prepared dataset, a bad config, a window longer than
            every piece, a run folder that holds something else, an `init`
            that is not a biaxial model, or a loss that became NaN.
    """
    started = time.monotonic()
    # MultiWorkerMirroredStrategy must exist before any other TensorFlow op.
    watchdog = None
    if strategy == "multi_worker":
        watchdog = _peer_watchdog(peer_timeout_s)
    try:
        if isinstance(strategy, str):
            strategy = make_strategy(strategy)
        plan = plan_run(data_dir, run_dir, config, overrides, init, overwrite, strategy)
        return _run(plan, strategy, callbacks, verbose, watchdog, started)
    finally:
        if watchdog is not None:
            watchdog.stop()


@dataclasses.dataclass
class RunPlan:
    """A training run, resolved and checked once before anything is written.

    Attributes:
        data_dir, run_dir: the (first) prepared dataset and the run folder.
        data_dirs: every prepared dataset of the run, in order.
        data_styles: the style of each of them.
        work_dir: where this process writes: the run folder, or for a worker
            other than the chief a scratch folder inside it.
        chief, workers: this process's part in a multi-worker run.
        meta: the prepared data's meta.json.
        model, train: the resolved `BiaxialConfig` and `TrainConfig`, handed
            on whole from here.
        init_weights: the weights of the `--init` model, or None.
        init_optimizer: `{path: value}` of the optimizer state the `--init`
            file holds (a checkpoint's: moments, averaged weights, step
            count; not its learning rate), or None.
        initial_epoch: the epochs a resumed run has finished.
        replace: the run folder holds a run to discard first (`--overwrite`).
        steps_per_epoch: batches per epoch.
    """

    data_dir: Path
    data_dirs: list
    data_styles: list
    run_dir: Path
    work_dir: Path
    chief: bool
    workers: int
    meta: dict
    model: BiaxialConfig
    train: TrainConfig
    init_weights: typing.Optional[list]
    initial_epoch: int
    replace: bool
    steps_per_epoch: int
    init_optimizer: typing.Optional[dict] = None

    def config_dict(self):
        """The run's config.json: both sections."""
        return config_to_dict(self.model, self.train)


def plan_run(data_dir, run_dir, config=None, overrides=None, init=None, overwrite=False,
             strategy=None):
    """Resolve a run's config against its data and run folder; write nothing.

    Args:
        See `train`.

    Returns:
        A `RunPlan`.

    Raises:
        UserError: see `train`.
    """
    from biax_keras import data

    data_dirs = [Path(d) for d in (data_dir if isinstance(data_dir, (list, tuple))
                                   else [data_dir])]
    metas = [data.load_meta(d) for d in data_dirs]
    _check_same_grid(data_dirs, metas)
    # One dataset without articulation makes the model play-only.
    meta = {**metas[0], "play_only": any(bool(m.get("play_only")) for m in metas)}
    data_styles = [data.dataset_style(d, m) for d, m in zip(data_dirs, metas)]
    init_model = _load_init(init) if init else None
    if init_model is not None:
        config = _config_with_init(config, init_model.config)
    model_config, train_config = resolve_config(config, meta, overrides, styles=data_styles)
    weights = train_config.data_weights
    if weights is not None and len(weights) != len(data_dirs):
        raise UserError(f"give one data weight per --data ({len(data_dirs)}), got "
                        f"{len(weights)}: {', '.join(f'{w:g}' for w in weights)}")
    chief, task_id = _worker(strategy) if strategy is not None else (True, 0)
    run_dir = Path(run_dir)
    # Workers other than the chief write where nobody reads (TensorFlow's
    # multi-worker advice): the run folder is the chief's alone.
    work_dir = run_dir if chief else run_dir / WORKERS / f"worker-{task_id}"
    initial_epoch, replace = _check_run_folder(
        work_dir, config_to_dict(model_config, train_config),
        data_dirs[0] if len(data_dirs) == 1 else data_dirs, overwrite)
    steps_per_epoch = train_config.steps_per_epoch
    if steps_per_epoch is None:
        pieces = sum(data.usable_pieces(d, "train", train_config.window) for d in data_dirs)
        steps_per_epoch = math.ceil(pieces / train_config.batch_size)
    return RunPlan(data_dirs[0], data_dirs, data_styles, run_dir, work_dir, chief,
                   _workers(strategy) if strategy is not None else 1, meta, model_config,
                   train_config, None if init_model is None else init_model.get_weights(),
                   initial_epoch, replace, steps_per_epoch,
                   _optimizer_state(init_model) if init and initial_epoch == 0 else None)


def _check_same_grid(data_dirs, metas):
    """Datasets trained on together share a note range and resolution (not articulation:
    one without it makes the model play-only)."""
    keys = ("steps_per_quarter", "lowest_pitch", "num_notes")
    first = {key: metas[0].get(key) for key in keys}
    for directory, meta in zip(data_dirs[1:], metas[1:]):
        for key in keys:
            if meta.get(key) != first[key]:
                raise UserError(
                    f"{directory} was prepared with {key} {meta.get(key)}, {data_dirs[0]} with "
                    f"{first[key]}; prepare every --data with the same --steps-per-quarter, "
                    f"--lowest-pitch and --num-notes")
    if len({bool(m.get("play_only")) for m in metas}) > 1:
        log.info("some datasets have articulation and some do not: the model is trained "
                 "play-only")


def _style_vectors(plan):
    """The one-hot style input of each of the plan's datasets."""
    import numpy as np

    styles = list(plan.model.styles)
    return [np.eye(len(styles), dtype=np.float32)[styles.index(s)] for s in plan.data_styles]


def _datasets(plan):
    """The train and valid streams of a plan (a resumed run draws new windows)."""
    from biax_keras import data

    train = plan.train
    if plan.model.styles:
        vectors = _style_vectors(plan)
        seed = train.seed + plan.initial_epoch
        train_data = data.make_mixed_dataset(
            plan.data_dirs, "train", vectors, train.data_weights, window=train.window,
            batch_size=train.batch_size, transpose=train.transpose, seed=seed,
            workers=plan.workers)
        valid_data = data.make_mixed_dataset(plan.data_dirs, "valid", vectors,
                                             window=train.window, batch_size=train.batch_size,
                                             seed=train.seed)
        return train_data, valid_data
    train_data = data.make_dataset(
        plan.data_dir, "train", window=train.window, batch_size=train.batch_size,
        transpose=train.transpose, seed=train.seed + plan.initial_epoch, workers=plan.workers)
    valid_data = data.make_dataset(plan.data_dir, "valid", window=train.window,
                                   batch_size=train.batch_size, seed=train.seed)
    return train_data, valid_data


def _start_folder(plan):
    """Everything the user gave has been checked: only now is the folder written."""
    if plan.replace:
        log.warning("--overwrite: discarding the run in %s", plan.work_dir)
        runs.clear(plan.work_dir)
    plan.work_dir.mkdir(parents=True, exist_ok=True)
    (plan.work_dir / "checkpoints").mkdir(exist_ok=True)
    _write_json_atomic(plan.work_dir / "config.json", plan.config_dict())
    runs.record_data(plan.work_dir, plan.data_dirs, plan.meta.get("source"))


def _build(plan, strategy):
    """The compiled model, in the strategy's scope, from `--init` where given."""
    import keras

    from biax_keras.nn.model import build_model

    keras.utils.set_random_seed(plan.train.seed)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    policy = _mixed_policy() if plan.train.mixed_precision else None
    with _dtype_policy(policy), scope:
        model = build_model(plan.model, learning_rate=plan.train.learning_rate,
                            clipnorm=plan.train.clipnorm, weight_decay=plan.train.weight_decay,
                            ema=plan.train.ema)
        if plan.init_weights is not None:
            model.set_weights(plan.init_weights)
        if plan.init_optimizer:
            _restore_optimizer(model, plan.init_optimizer)
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        _build_from_a_local_batch(model)
    if plan.workers > 1:
        _logs_reducible_across_workers(model)
    log.info("model: %s parameters; %d steps per epoch of %d x %d steps x %d notes%s",
             f"{model.count_params():,}", plan.steps_per_epoch, plan.train.batch_size,
             plan.train.window, plan.model.num_notes, f"; mixed precision {policy}" if policy else "")
    return model


def _run_callbacks(plan, valid_data, watchdog):
    """The callbacks of a run, in the order they must run."""
    import keras

    train, work_dir = plan.train, plan.work_dir
    # One TensorBoard run per run folder, under logs/: the hparams session
    # must be a folder above the train/ and validation/ metrics it shows.
    logs_dir = work_dir / "logs" / session_name(plan.run_dir)
    plateau = _plateau_so_far(work_dir, plan.initial_epoch)
    ema_in, ema_out = _ema_callbacks() if train.ema is not None else (None, None)
    callbacks = [
        watchdog.callback() if watchdog is not None else None,
        keras.callbacks.TerminateOnNaN(),
        ema_in,
        keras.callbacks.ModelCheckpoint(
            str(work_dir / "checkpoints" / BEST_CHECKPOINT), monitor="val_frame_nll",
            mode="min", save_best_only=True, initial_value_threshold=plateau[0]),
        keras.callbacks.TensorBoard(str(logs_dir), write_graph=False, update_freq="epoch",
                                    profile_batch=0),
        keras.callbacks.CSVLogger(str(work_dir / "history.csv"), append=True),
        _epoch_times(work_dir / runs.TIMES_FILE),
        roll_summaries(logs_dir, _first_window(valid_data), plan.model, train,
                       hparams_of(plan.model, train) if plan.chief else None),
    ]
    if train.patience:
        callbacks.append(_resumed(keras.callbacks.EarlyStopping, plateau)(
            monitor="val_frame_nll", mode="min", patience=train.patience,
            restore_best_weights=True))
    if train.lr_decay_patience:
        callbacks.append(_resumed(keras.callbacks.ReduceLROnPlateau, plateau)(
            monitor="val_frame_nll", mode="min", patience=train.lr_decay_patience,
            factor=train.lr_decay_factor, min_lr=train.min_learning_rate, verbose=1))
    # The backup holds the trained weights, not their average.
    callbacks.append(ema_out)
    # Last, so that a kill between the epoch's records and its backup redoes
    # the epoch (a repeated history row) rather than skipping its records.
    callbacks.append(keras.callbacks.BackupAndRestore(
        str(work_dir / "backup"), save_freq=train.backup_every or "epoch",
        double_checkpoint=True, delete_checkpoint=False))
    return [c for c in callbacks if c is not None]


def _run(plan, strategy, callbacks, verbose, watchdog, started):
    train_data, valid_data = _datasets(plan)
    _start_folder(plan)
    model = _build(plan, strategy)
    run_callbacks = _run_callbacks(plan, valid_data, watchdog) + list(callbacks)
    if verbose is None:
        verbose = 1 if sys.stderr.isatty() else 2
    # Keras prints progress on stdout; stdout belongs to --json's one object.
    with contextlib.redirect_stdout(sys.stderr):
        history = model.fit(train_data, epochs=plan.train.epochs,
                            steps_per_epoch=plan.steps_per_epoch, validation_data=valid_data,
                            validation_steps=plan.train.validation_steps,
                            callbacks=run_callbacks, verbose=verbose, shuffle=False)
    return _finish(plan, model, history, started)


def _finish(plan, model, history, started):
    """Save the run's model (its best epoch's weights), drop the backup, report."""
    work_dir, run_dir = plan.work_dir, plan.run_dir
    last = {k: float(v[-1]) for k, v in history.history.items() if v}
    if last and not math.isfinite(last.get("loss", 0.0)):
        raise UserError(f"training diverged (loss {last['loss']}); {work_dir}/checkpoints holds "
                        "the best model so far; try a lower --learning-rate")
    best_path = work_dir / "checkpoints" / BEST_CHECKPOINT
    best, best_epoch = runs.best_epoch(work_dir)
    epochs_run = len(next(iter(history.history.values()), []))
    last_epoch = plan.initial_epoch + epochs_run
    # With averaged weights the model now holds the trained ones: the
    # checkpoint holds the average.
    averaged = plan.train.ema is not None
    if best_path.is_file() and best_epoch is not None and (averaged or best_epoch != last_epoch):
        # The run's model is its best one, not merely its last.
        model.load_weights(best_path)
        log.info("model.keras: the weights of epoch %d (best valid frame NLL %.4f), not of "
                 "the last epoch %d", best_epoch, best, last_epoch)
    save_model_atomic(model, work_dir / "model.keras")
    # Only now is the backup redundant: a kill before this line resumes.
    shutil.rmtree(work_dir / "backup", ignore_errors=True)
    if not plan.chief:
        shutil.rmtree(work_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # the last worker out removes the folder
            (run_dir / WORKERS).rmdir()

    rows = _history_rows(work_dir / "history.csv") if plan.chief else []
    return {
        "run": str(run_dir),
        "model": str(run_dir / "model.keras"),
        "parameters": model.count_params(),
        "initial_epoch": plan.initial_epoch,
        "epochs": int(rows[-1]["epoch"]) + 1 if rows else plan.initial_epoch,
        "epochs_run": epochs_run,
        "steps_per_epoch": plan.steps_per_epoch,
        "last": last,
        "best_val_frame_nll": best,
        "best_epoch": best_epoch,
        "config": plan.config_dict(),
        "seconds": round(time.monotonic() - started, 3),
    }


def _optimizer_state(loaded):
    """The optimizer state of an `--init` model, `{variable path: array}`, or None.

    A checkpoint (`checkpoints/best.keras`, or a staged copy of one) keeps
    Adam's moments, the averaged weights and the step count: a run that goes
    on from it elsewhere goes on where it was, not from a cold optimizer. A
    file saved without its optimizer (the shipped models) has none. The
    learning rate is left out: it is the new run's to set.
    """
    optimizer = getattr(loaded, "optimizer", None)
    if optimizer is None or not optimizer.variables or int(optimizer.iterations) == 0:
        return None
    return {_own_path(v): v.numpy() for v in optimizer.variables
            if not v.path.endswith("learning_rate")}


def _own_path(variable):
    """An optimizer variable's path without the optimizer's name (`adam_1/` in a process
    that built another optimizer before)."""
    return variable.path.split("/", 1)[-1]


def _restore_optimizer(model, state):
    """Give the run's optimizer the `--init` file's state, where every variable fits."""
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    ours = {_own_path(v): v for v in optimizer.variables if not v.path.endswith("learning_rate")}
    if set(ours) != set(state) or any(tuple(ours[k].shape) != state[k].shape for k in ours):
        log.warning("the --init file's optimizer state does not fit this run's optimizer "
                    "(another optimizer, averaging or weight decay): its weights are used, "
                    "the optimizer starts afresh")
        return
    for key, variable in ours.items():
        variable.assign(state[key])
    log.info("--init: the optimizer goes on from its saved state (step %d)",
             int(optimizer.iterations))


def _load_init(path):
    """The model to start from, with its optimizer where the file keeps one, read once.

    Checked as `biax_keras.load_model` checks a .keras file.
    """
    import warnings

    import biax_keras

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--init {path} does not exist (give a .keras file written by biax train)")
    try:
        with warnings.catch_warnings():  # an optimizer saved before it was built: no state
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return biax_keras._load_keras_file(str(path), compile=True)
    except Exception:
        pass  # a compile this Keras cannot rebuild: the weights alone, or the one-line error
    try:
        return biax_keras._load_keras_file(str(path))
    except UserError as e:
        raise UserError(f"--init {e}") from None


def format_report(report):
    """A short human summary of `train`'s report."""
    best = report["best_val_frame_nll"]
    lines = [
        f"trained {report['epochs_run']} epoch(s) (epochs {report['initial_epoch'] + 1}.."
        f"{report['epochs']}) in {report['seconds']:.0f} s",
        f"valid frame NLL: best {best:.4f} nats per step (epoch {report['best_epoch']})"
        if best is not None else "valid frame NLL: none recorded",
        f"model: {report['model']}" + (f" (the weights of epoch {report['best_epoch']}, the best)"
                                       if best is not None else ""),
        f"TensorBoard: tensorboard --logdir {Path(report['run']) / 'logs'}",
    ]
    return "\n".join(lines)
