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
import json
import logging
import math
import shutil
import sys
import time
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
        data_dir: a folder written by `biax prepare` (`data.prepare`).
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
        return _train(data_dir, run_dir, config, strategy, overrides, init, callbacks, verbose,
                      started, watchdog, overwrite)
    finally:
        if watchdog is not None:
            watchdog.stop()


def _train(data_dir, run_dir, config, strategy, overrides, init, callbacks, verbose, started,
           watchdog, overwrite=False):
    from biax_keras import data

    meta = data.load_meta(data_dir)
    init_model = _load_init(init) if init else None
    if init_model is not None:
        config = _config_with_init(config, init_model.config)
    model_config, train_config = resolve_config(config, meta, overrides)

    import keras

    chief, task_id = _worker(strategy) if strategy is not None else (True, 0)
    workers = _workers(strategy) if strategy is not None else 1
    run_dir = Path(run_dir)
    # Workers other than the chief write where nobody reads (TensorFlow's
    # multi-worker advice): the run folder is the chief's alone.
    work_dir = run_dir if chief else run_dir / WORKERS / f"worker-{task_id}"
    config_dict = config_to_dict(model_config, train_config)
    initial_epoch, replace = _check_run_folder(work_dir, config_dict, data_dir, overwrite)

    # A resumed run draws new windows rather than replaying the first epochs'.
    data_seed = train_config.seed + initial_epoch
    train_data = data.make_dataset(
        data_dir, "train", window=train_config.window, batch_size=train_config.batch_size,
        transpose=train_config.transpose, seed=data_seed, workers=workers)
    valid_data = data.make_dataset(
        data_dir, "valid", window=train_config.window, batch_size=train_config.batch_size,
        seed=train_config.seed)
    steps_per_epoch = train_config.steps_per_epoch
    if steps_per_epoch is None:
        pieces = data.usable_pieces(data_dir, "train", train_config.window)
        steps_per_epoch = math.ceil(pieces / train_config.batch_size)

    # Everything the user gave has been checked: only now is the folder written.
    if replace:
        log.warning("--overwrite: discarding the run in %s", work_dir)
        runs.clear(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    _write_json_atomic(work_dir / "config.json", config_dict)
    runs.record_data(work_dir, data_dir, meta.get("source"))

    keras.utils.set_random_seed(train_config.seed)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    policy = _mixed_policy() if train_config.mixed_precision else None
    from biax_keras.nn.model import build_model

    with _dtype_policy(policy), scope:
        model = build_model(model_config, learning_rate=train_config.learning_rate,
                            clipnorm=train_config.clipnorm, weight_decay=train_config.weight_decay,
                            ema=train_config.ema)
        if init_model is not None:
            model.set_weights(init_model.get_weights())
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        _build_from_a_local_batch(model)
    if workers > 1:
        _logs_reducible_across_workers(model)
    parameters = model.count_params()
    log.info("model: %s parameters; %d steps per epoch of %d x %d steps x %d notes%s",
             f"{parameters:,}", steps_per_epoch, train_config.batch_size, train_config.window,
             model_config.num_notes, f"; mixed precision {policy}" if policy else "")

    # One TensorBoard run per run folder, under logs/: the hparams session
    # must be a folder above the train/ and validation/ metrics it shows.
    logs_dir = work_dir / "logs" / session_name(run_dir)
    history_path = work_dir / "history.csv"
    (work_dir / "checkpoints").mkdir(exist_ok=True)
    plateau = _plateau_so_far(work_dir, initial_epoch)
    best = plateau[0]
    ema_in, ema_out = _ema_callbacks() if train_config.ema is not None else (None, None)
    run_callbacks = [
        keras.callbacks.TerminateOnNaN(),
        ema_in,
        keras.callbacks.ModelCheckpoint(
            str(work_dir / "checkpoints" / BEST_CHECKPOINT), monitor="val_frame_nll",
            mode="min", save_best_only=True, initial_value_threshold=best),
        keras.callbacks.TensorBoard(str(logs_dir), write_graph=False, update_freq="epoch",
                                    profile_batch=0),
        keras.callbacks.CSVLogger(str(history_path), append=True),
        _epoch_times(work_dir / runs.TIMES_FILE),
        roll_summaries(logs_dir, _first_window(valid_data), model_config, train_config,
                       hparams_of(model_config, train_config) if chief else None),
    ]
    if train_config.patience:
        run_callbacks.append(_resumed(keras.callbacks.EarlyStopping, plateau)(
            monitor="val_frame_nll", mode="min", patience=train_config.patience,
            restore_best_weights=True))
    if train_config.lr_decay_patience:
        run_callbacks.append(_resumed(keras.callbacks.ReduceLROnPlateau, plateau)(
            monitor="val_frame_nll", mode="min", patience=train_config.lr_decay_patience,
            factor=train_config.lr_decay_factor, min_lr=train_config.min_learning_rate,
            verbose=1))
    # The backup holds the trained weights, not their average.
    run_callbacks.append(ema_out)
    # Last, so that a kill between the epoch's records and its backup redoes
    # the epoch (a repeated history row) rather than skipping its records.
    run_callbacks.append(keras.callbacks.BackupAndRestore(
        str(work_dir / "backup"), save_freq=train_config.backup_every or "epoch",
        double_checkpoint=True, delete_checkpoint=False))
    run_callbacks = [c for c in run_callbacks if c is not None]
    if watchdog is not None:
        run_callbacks.insert(0, watchdog.callback())
    run_callbacks.extend(callbacks)

    if verbose is None:
        verbose = 1 if sys.stderr.isatty() else 2
    # Keras prints progress on stdout; stdout belongs to --json's one object.
    with contextlib.redirect_stdout(sys.stderr):
        history = model.fit(train_data, epochs=train_config.epochs, steps_per_epoch=steps_per_epoch,
                            validation_data=valid_data, validation_steps=train_config.validation_steps,
                            callbacks=run_callbacks, verbose=verbose, shuffle=False)

    last = {k: float(v[-1]) for k, v in history.history.items() if v}
    if last and not math.isfinite(last.get("loss", 0.0)):
        raise UserError(f"training diverged (loss {last['loss']}); {work_dir}/checkpoints holds "
                        "the best model so far; try a lower --learning-rate")
    best_path = work_dir / "checkpoints" / BEST_CHECKPOINT
    best, best_epoch = runs.best_epoch(work_dir)
    last_epoch = initial_epoch + len(next(iter(history.history.values()), []))
    # With averaged weights the model now holds the trained ones: the
    # checkpoint holds the average.
    averaged = train_config.ema is not None
    if best_path.is_file() and best_epoch is not None and (averaged or best_epoch != last_epoch):
        # The run's model is its best one, not merely its last.
        model.load_weights(best_path)
        log.info("model.keras: the weights of epoch %d (best valid frame NLL %.4f), not of "
                 "the last epoch %d", best_epoch, best, last_epoch)
    model_path = work_dir / "model.keras"
    save_model_atomic(model, model_path)
    # Only now is the backup redundant: a kill before this line resumes.
    shutil.rmtree(work_dir / "backup", ignore_errors=True)
    if not chief:
        shutil.rmtree(work_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # the last worker out removes the folder
            (run_dir / WORKERS).rmdir()

    rows = _history_rows(history_path)
    return {
        "run": str(run_dir),
        "model": str(run_dir / "model.keras"),
        "parameters": parameters,
        "initial_epoch": initial_epoch,
        "epochs": int(rows[-1]["epoch"]) + 1 if rows else initial_epoch,
        "epochs_run": len(next(iter(history.history.values()), [])),
        "steps_per_epoch": steps_per_epoch,
        "last": last,
        "best_val_frame_nll": best,
        "best_epoch": best_epoch,
        "config": config_dict,
        "seconds": round(time.monotonic() - started, 3),
    }


def _load_init(path):
    """The model to start from, checked as `biax_keras.load_model` checks a .keras file."""
    import biax_keras

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--init {path} does not exist (give a .keras file written by biax train)")
    try:
        # Only the weights are wanted: the run compiles its own optimizer.
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
