"""Training: `model.fit` on a prepared dataset, with the callbacks a run needs.

    from biax_keras import train
    report = train.train("data/bach", "runs/bach", "training/configs/tiny.json")

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
import csv
import dataclasses
import json
import logging
import math
import os
import shutil
import sys
import time
import typing
from pathlib import Path

from biax_keras import runs
from biax_keras.errors import UserError
from biax_keras.files import write_atomic
from biax_keras.config import BiaxialConfig, checked_fields

log = logging.getLogger(__name__)

# Model config keys that describe the data rather than the network: they are
# read from the prepared folder's meta.json.
DATA_KEYS = ("lowest_pitch", "num_notes", "steps_per_quarter", "play_only")
RUN_FILES = runs.RUN_FILES
# TensorBoard: how much of the validation window is drawn (4 bars of 4/4 in
# sixteenths), and the tags of the pictures and the sound.
IMAGE_STEPS = 64
OUTPUT_IMAGE_TAG = "valid/true vs model"
SAMPLE_IMAGE_TAG = "sample/roll"
SAMPLE_AUDIO_TAG = "sample/audio"
BEST_CHECKPOINT = runs.BEST_CHECKPOINT
WORKERS = runs.WORKERS


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How a model is trained.

    Attributes:
        epochs: epochs to train (counted across resumes).
        batch_size: windows per batch (global, across devices).
        window: steps predicted per window.
        steps_per_epoch: batches per epoch; None means one pass over the
            pieces of the train split (one random window of each).
        validation_steps: batches of validation per epoch; None means every
            whole window of the valid split.
        learning_rate: Adam's learning rate.
        clipnorm: gradients are clipped to this global norm; None turns it off.
        seed: seed of weight initialization, dropout and the data stream.
        transpose: random transposition of training windows.
        image_every: epochs between piano-roll images of the model's output on
            a fixed validation window (0: never).
        sample_every: epochs between sampled pieces (image and audio) in
            TensorBoard (0: never).
        sample_steps: steps of each sampled piece.
        patience: stop after this many epochs without a better valid frame
            NLL, keeping the best weights; None trains every epoch.
        backup_every: batches between backups; None backs up at the end of
            every epoch.
        mixed_precision: compute in bfloat16 (CPU) or float16 (GPU) with
            float32 weights; the saved model computes in float32.
        lr_decay_patience: multiply the learning rate by `lr_decay_factor`
            after this many epochs without a better valid frame NLL (Keras's
            ReduceLROnPlateau); None keeps it constant.
        lr_decay_factor: what the learning rate is multiplied by on a plateau.
        min_learning_rate: the learning rate is never decayed below this.
        weight_decay: decoupled weight decay of Adam (AdamW's); 0 for none.
        ema: decay of an exponential moving average of the weights (e.g.
            0.999), kept by the optimizer; validation, checkpoints and
            model.keras use the averaged weights. None trains without one.
    """

    epochs: int = 100
    batch_size: int = 10
    window: int = 128
    steps_per_epoch: typing.Optional[int] = None
    validation_steps: typing.Optional[int] = None
    learning_rate: float = 1e-3
    clipnorm: typing.Optional[float] = 1.0
    seed: int = 0
    transpose: bool = True
    image_every: int = 1
    sample_every: int = 5
    sample_steps: int = 128
    patience: typing.Optional[int] = None
    backup_every: typing.Optional[int] = None
    mixed_precision: bool = False
    lr_decay_patience: typing.Optional[int] = None
    lr_decay_factor: float = 0.5
    min_learning_rate: float = 1e-5
    weight_decay: float = 0.0
    ema: typing.Optional[float] = None

    def __post_init__(self):
        for name in ("epochs", "batch_size", "window", "sample_steps"):
            _require(getattr(self, name) >= 1, f"train.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("steps_per_epoch", "validation_steps", "patience", "backup_every",
                     "lr_decay_patience"):
            value = getattr(self, name)
            _require(value is None or value >= 1,
                     f"train.{name} must be at least 1 or null, got {value}")
        for name in ("image_every", "sample_every"):
            _require(getattr(self, name) >= 0,
                     f"train.{name} must be 0 (never) or more, got {getattr(self, name)}")
        _require(self.learning_rate > 0, f"train.learning_rate must be positive, got {self.learning_rate}")
        _require(self.clipnorm is None or self.clipnorm > 0,
                 f"train.clipnorm must be positive or null, got {self.clipnorm}")
        _require(0 < self.lr_decay_factor < 1,
                 f"train.lr_decay_factor must be between 0 and 1, got {self.lr_decay_factor}")
        _require(0 <= self.min_learning_rate <= self.learning_rate,
                 f"train.min_learning_rate must be between 0 and the learning rate "
                 f"{self.learning_rate}, got {self.min_learning_rate}")
        _require(self.weight_decay >= 0,
                 f"train.weight_decay must be 0 or more, got {self.weight_decay}")
        _require(self.ema is None or 0 < self.ema < 1,
                 f"train.ema must be between 0 and 1 (e.g. 0.999) or null, got {self.ema}")

    @classmethod
    def from_dict(cls, values):
        """Builds a config from a dict, rejecting unknown keys and wrong types.

        Raises:
            UserError: for an unknown key or a value of the wrong type.
        """
        return cls(**checked_fields(cls, values, "train"))

    def to_dict(self):
        return dataclasses.asdict(self)


def _require(condition, message):
    if not condition:
        raise UserError(message)


def read_config(config):
    """The raw sections of a run config.

    Args:
        config: None (defaults), a path to a JSON file, or a dict
            `{"model": {...}, "train": {...}}` (both sections optional).

    Returns:
        `(model_values, train_values)`: dicts of the keys given, not yet checked.

    Raises:
        UserError: an unreadable file, invalid JSON or an unknown section.
    """
    if config is None:
        return {}, {}
    if isinstance(config, (str, os.PathLike)):
        try:
            with open(config) as f:
                config = json.load(f)
        except OSError as e:
            raise UserError(f"cannot read config {config}: {e.strerror}") from None
        except ValueError as e:
            raise UserError(f"config {config} is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise UserError(f"a config must be a JSON object with 'model' and 'train' sections, "
                        f"got {type(config).__name__}")
    unknown = sorted(set(config) - {"model", "train"})
    if unknown:
        raise UserError(f"unknown config section(s) {', '.join(unknown)}; "
                        "a config has only 'model' and 'train'")
    model_values, train_values = config.get("model", {}), config.get("train", {})
    for name, values in (("model", model_values), ("train", train_values)):
        if not isinstance(values, dict):
            raise UserError(f"the {name!r} config must be a JSON object, got {type(values).__name__}")
    return dict(model_values), dict(train_values)


def resolve_config(config=None, meta=None, overrides=None):
    """The model and train configs of a run.

    Args:
        config: as for `read_config`.
        meta: the prepared data's meta (from `data.load_meta`); its note range,
            steps per quarter and play-only flag become the model's.
        overrides: dict of train keys (e.g. from command-line flags) that
            replace the file's values; None values are ignored.

    Returns:
        `(BiaxialConfig, TrainConfig)`.

    Raises:
        UserError: for unknown keys, wrong types, or a model config whose data
            keys disagree with the data.
    """
    model_values, train_values = read_config(config)
    train_values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    train_config = TrainConfig.from_dict(train_values)
    BiaxialConfig.from_dict(model_values)  # checks keys and types before the data
    if meta is not None:
        model_values = _with_data_range(model_values, meta)
    return BiaxialConfig.from_dict(model_values), train_config


def _with_data_range(model_values, meta):
    values = dict(model_values)
    data = {key: meta[key] for key in DATA_KEYS if key in meta}
    data["play_only"] = bool(data.get("play_only", False))
    for key, value in data.items():
        given = values.get(key)
        if key == "play_only":
            # Training play alone on data with articulation is a choice (the
            # network is then shown no articulation); training articulation
            # on data without it would teach "never".
            if given is False and value:
                raise UserError("the config says play_only false, but the data has no "
                                "articulation (prepared play-only); set play_only true")
            values[key] = bool(given) or value
        elif given is not None and given != value:
            flag = "--" + key.replace("_", "-")
            raise UserError(f"the config says {key} {given} but the data was prepared with "
                            f"{value}; remove {key} from the config or prepare the data "
                            f"with {flag} {given}")
        else:
            values[key] = value
    return values


def config_to_dict(model_config, train_config):
    """The JSON form of a run config (what config.json holds)."""
    return {"model": model_config.to_dict(), "train": train_config.to_dict()}


# ----------------------------------------------------------------------------
# Strategies
# ----------------------------------------------------------------------------

STRATEGIES = ("default", "mirrored", "multi_worker")
# How long a worker waits for the others of its cluster (to start, and at
# each step) before it gives up: a peer that never answers must not hang a run.
DEFAULT_PEER_TIMEOUT_S = 300.0


def read_tf_config(text):
    """Check a TF_CONFIG value: the cluster this worker belongs to, and its task.

    Args:
        text: the TF_CONFIG environment variable, JSON like
            `{"cluster": {"worker": ["host1:port", "host2:port"]},
            "task": {"type": "worker", "index": 0}}`.

    Returns:
        The parsed dict.

    Raises:
        UserError: invalid JSON, or a cluster or task that TensorFlow would
            not understand, named in one line.
    """
    try:
        config = json.loads(text)
    except ValueError as e:
        raise UserError(f"TF_CONFIG is not valid JSON ({e})") from None
    example = ('e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}')
    if not isinstance(config, dict):
        raise UserError(f"TF_CONFIG must be a JSON object, {example}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise UserError(f"TF_CONFIG has no \"cluster\" of jobs and addresses, {example}")
    for job, addresses in cluster.items():
        if (not isinstance(addresses, list) or not addresses
                or not all(isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addresses)):
            raise UserError(f"TF_CONFIG's cluster job {job!r} must be a list of \"host:port\" "
                            f"addresses, got {addresses!r}")
    if not isinstance(task, dict) or "type" not in task:
        raise UserError(f"TF_CONFIG has no \"task\" saying which worker this is, {example}")
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in cluster:
        raise UserError(f"TF_CONFIG's task type {kind!r} is not a job of its cluster "
                        f"({', '.join(map(repr, cluster))})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[kind]):
        raise UserError(f"TF_CONFIG's task index {index!r} is not one of the "
                        f"{len(cluster[kind])} {kind} addresses (0..{len(cluster[kind]) - 1})")
    return config


def make_strategy(name):
    """A `tf.distribute` strategy by name.

    Args:
        name: `default` (one device), `mirrored` (every local GPU) or
            `multi_worker` (MultiWorkerMirroredStrategy; the cluster comes
            from the TF_CONFIG environment variable).

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        UserError: an unknown name or an unusable TF_CONFIG.
    """
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" in os.environ:
            read_tf_config(os.environ["TF_CONFIG"])
        else:
            log.warning("multi_worker strategy without TF_CONFIG: training as a single worker")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


class PeerWatchdog:
    """Ends a worker that waits longer than `timeout_s` for the others.

    TensorFlow waits for a missing worker without end (at start-up for the
    cluster to form, and in every collective during training), inside C++
    where no Python exception can reach. The watchdog is reset whenever the
    run moves on (the cluster formed, a batch finished); when it runs out it
    writes one line on stderr and ends the process with exit code 2.
    """

    def __init__(self, timeout_s, peers, who):
        import threading

        self.timeout_s = float(timeout_s)
        self.peers = peers
        self.who = who
        self._lock = threading.Lock()
        self._deadline = None
        self._thread = threading.Thread(target=self._watch, name="peer-watchdog", daemon=True)

    def start(self):
        self.reset()
        self._thread.start()
        return self

    def reset(self):
        with self._lock:
            self._deadline = time.monotonic() + self.timeout_s

    def stop(self):
        with self._lock:
            self._deadline = None

    def _watch(self):
        while True:
            with self._lock:
                deadline = self._deadline
            if deadline is None:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                sys.stderr.write(
                    f"biax train: error: {self.who}: no answer from the other workers "
                    f"({', '.join(self.peers)}) within {self.timeout_s:g} s; start every worker "
                    f"listed in TF_CONFIG (or raise --peer-timeout)\n")
                sys.stderr.flush()
                os._exit(2)
            time.sleep(min(left, 1.0))

    def callback(self):
        """A Keras callback that resets the watchdog as training moves on."""
        import keras

        watchdog = self

        class ResetPeerWatchdog(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                watchdog.reset()

            def on_test_batch_end(self, batch, logs=None):
                watchdog.reset()

            def on_epoch_end(self, epoch, logs=None):
                watchdog.reset()

        return ResetPeerWatchdog()


def _cluster_of(config):
    """`(me, peers, who)` of a checked TF_CONFIG: addresses, and a name for messages."""
    task = config["task"]
    kind, index = task["type"], task.get("index", 0)
    me = config["cluster"][kind][index]
    peers = [a for addresses in config["cluster"].values() for a in addresses if a != me]
    return me, peers, f"{kind} {index} ({me})"


_HELLO = b"biax-worker "


def rendezvous(me, peers, timeout_s, who):
    """Wait until every peer of the cluster is up, at most `timeout_s`.

    TensorFlow's MultiWorkerMirroredStrategy waits for a missing worker
    without end, holding Python's lock so that no thread can step in. So
    before it starts, each worker listens on its own port and knocks on every
    peer's; when it has reached all peers and heard from all of them, every
    peer is known to be up, and the port is freed for TensorFlow's server.

    Raises:
        UserError: some peer did not answer in time, or the port is taken.
    """
    import select
    import socket

    host, _, port = me.rpartition(":")
    listener = socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", int(port)))
    except OSError as e:
        listener.close()
        raise UserError(f"{who}: cannot listen on port {port} ({e.strerror or e}); is another "
                        f"worker already running with this TF_CONFIG?") from None
    listener.listen(max(8, 2 * len(peers)))
    listener.setblocking(False)
    reached, heard = set(), set()
    deadline = time.monotonic() + timeout_s
    try:
        while (reached != set(peers) or heard != set(peers)) and time.monotonic() < deadline:
            for peer in peers:
                if peer in reached:
                    continue
                peer_host, _, peer_port = peer.rpartition(":")
                try:
                    with socket.create_connection((peer_host.strip("[]"), int(peer_port)),
                                                  timeout=1.0) as connection:
                        # Closing first leaves TIME_WAIT on our side, not on the peer's port.
                        connection.sendall(_HELLO + me.encode())
                    reached.add(peer)
                except OSError:
                    pass
            readable, _, _ = select.select([listener], [], [], 0.2)
            while readable:
                try:
                    connection, _ = listener.accept()
                except BlockingIOError:
                    break
                with connection:
                    connection.settimeout(2.0)
                    message = b""
                    try:
                        while chunk := connection.recv(256):
                            message += chunk
                    except OSError:
                        continue
                if message.startswith(_HELLO):
                    heard.add(message[len(_HELLO):].decode("utf-8", "replace"))
    finally:
        listener.close()
    missing = [p for p in peers if p not in reached or p not in heard]
    if missing:
        raise UserError(f"{who}: no answer from the other workers ({', '.join(missing)}) within "
                        f"{timeout_s:g} s; start every worker listed in TF_CONFIG (or raise "
                        f"--peer-timeout)")


def _peer_watchdog(timeout_s):
    """For a multi-worker TF_CONFIG: wait for the peers (`rendezvous`), then
    return a started PeerWatchdog for the training that follows; else None."""
    if "TF_CONFIG" not in os.environ:
        return None
    me, peers, who = _cluster_of(read_tf_config(os.environ["TF_CONFIG"]))
    if not peers:
        return None
    rendezvous(me, peers, timeout_s, who)
    return PeerWatchdog(timeout_s, peers, who).start()


def _build_from_a_local_batch(model):
    """Let `fit` build a model under a strategy with several replicas.

    Keras (3.5 to 3.15 at least) averages the first batch across replicas
    before building the model symbolically, and the strategies cannot reduce
    a dict of inputs (keras-team/keras#20329). One replica's batch has the
    shapes the build needs, so `fit` is given that instead.
    """
    import keras
    import tensorflow as tf

    original = getattr(model, "_maybe_symbolic_build", None)
    if original is None:  # a Keras without the step this works around
        return

    def build(iterator=None, data_batch=None):
        if iterator is not None and data_batch is None:
            for _, _, batches in iterator:
                data_batch = keras.tree.map_structure(
                    lambda v: (model.distribute_strategy.experimental_local_results(v)[0]
                               if isinstance(v, tf.distribute.DistributedValues) else v),
                    next(batches))
                break
        return original(data_batch=data_batch)

    model._maybe_symbolic_build = build


def _logs_reducible_across_workers(model):
    """Let `fit` average a step's logs across the workers of a cluster.

    Keras 3 averages each log value across workers along axis 0, which a
    scalar has not (tensorflow/tensorflow#72388): every model's `fit` fails
    under MultiWorkerMirroredStrategy with more than one worker. Each value
    is given that axis here, of length 1; the average is then the scalar.
    """
    from keras import ops

    def with_axis(step):
        def wrapped(data):
            return {name: ops.reshape(value, (1,)) for name, value in step(data).items()}
        return wrapped

    model.train_step = with_axis(model.train_step)
    model.test_step = with_axis(model.test_step)


def _workers(strategy):
    """Number of worker processes training together (1 without a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    jobs = resolver.cluster_spec().as_dict()
    return max(1, len(jobs.get("worker", [])) + len(jobs.get("chief", [])))


def _worker(strategy):
    """`(is_chief, task_id)` of this process in a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True, 0
    task_type, task_id = resolver.task_type, resolver.task_id or 0
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief)
    return chief, task_id


# ----------------------------------------------------------------------------
# Run folders
# ----------------------------------------------------------------------------


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


def _history_rows(path):
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def _plateau_so_far(run_dir, before_epoch, key="val_frame_nll"):
    """`(best, epochs since it)` of `key` over history.csv's epochs before `before_epoch`.

    A resumed run's checkpointing, early stopping and learning-rate decay
    count from these, rather than forgetting the epochs before the resume.
    """
    values = runs.valid_history(run_dir, key)
    best, wait = None, 0
    for epoch in sorted(e for e in values if e < before_epoch):
        if best is None or values[epoch] < best:
            best, wait = values[epoch], 0
        else:
            wait += 1
    return best, wait


def _resumed(callback_class, plateau):
    """`callback_class` (EarlyStopping, ReduceLROnPlateau) starting from `plateau`.

    Both forget their best value and their count of epochs without it at the
    start of `fit`; a resumed run gives them back what history.csv says.
    ReduceLROnPlateau starts its count again after each reduction (we use no
    cooldown), so its count is the epochs since the best modulo its patience:
    the reductions already made are not made again at the resume.
    """
    import keras

    best, wait = plateau
    decays = issubclass(callback_class, keras.callbacks.ReduceLROnPlateau)

    class Resumed(callback_class):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if best is not None:
                self.best = best
                self.wait = wait % self.patience if decays else wait

    Resumed.__name__ = callback_class.__name__
    return Resumed


def _epoch_times(path):
    """A callback appending `epoch,seconds` to `path` as each epoch ends.

    The run's training time is their sum (`runs.training_seconds`) over as
    many sittings as it took; Keras's CSVLogger keeps no times, and a column
    added to history.csv would not line up with a resumed run's older rows.
    """
    import keras

    class EpochTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            new = not path.exists()
            with open(path, "a", newline="") as f:
                rows = csv.writer(f)
                if new:
                    rows.writerow(["epoch", "seconds"])
                rows.writerow([epoch, f"{time.monotonic() - self._started:.2f}"])

    return EpochTimes()


def _ema_callbacks():
    """Two callbacks that put the optimizer's averaged weights in the model.

    The first swaps the average in when validation begins and leaves it there
    through the epoch's records (checkpoint, history, images, early
    stopping); the second, placed before the backup, swaps the trained
    weights back so that the backup (and the next epoch) carries on training
    them. Keras's SwapEMAWeights swaps back only when the next epoch begins,
    after the backup has saved the average as if it were the trained weights.
    """
    import keras

    class AverageIn(keras.callbacks.SwapEMAWeights):
        def __init__(self):
            super().__init__(swap_on_epoch=False)

        def on_test_end(self, logs=None):
            pass  # the average stays for the epoch's records

        def on_epoch_end(self, epoch, logs=None):
            self.on_test_begin()  # an epoch without validation still records the average

        def swap_out(self):
            if self._ema_weights_in_model:
                self._swap_variables()
                self._ema_weights_in_model = False

    average_in = AverageIn()

    class AverageOut(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            average_in.swap_out()

        def on_train_end(self, logs=None):
            average_in.swap_out()

    return average_in, AverageOut()


# ----------------------------------------------------------------------------
# TensorBoard pictures and sounds
# ----------------------------------------------------------------------------


def _find_generate():
    """The public `biax_keras.generate` function."""
    import biax_keras

    return biax_keras.generate


def session_name(run_dir):
    """The TensorBoard run (and hparams session) of a run folder: its own name."""
    return Path(run_dir).resolve().name or "run"


def roll_summaries(log_dir, window, model_config, train_config, hparams=None):
    """A Keras callback that shows piano rolls, samples and hparams in TensorBoard.

    Every `train_config.image_every` epochs it draws, on a fixed validation
    window (its first `IMAGE_STEPS` steps), the true roll above the model's
    P(play) (and P(articulate)); every `train_config.sample_every` epochs it
    composes a piece of `sample_steps` steps with `biax_keras.generate` and
    adds its piano roll and its audio (a General MIDI piano, see
    `render.synthesize`). Pictures come from `render.roll_image`. Steps are
    epochs counted from 0, as Keras's TensorBoard counts.

    Args:
        log_dir: this run's TensorBoard folder (beside Keras's `train/` and
            `validation/`): images and audio go to `log_dir/samples`, the
            hparams session to `log_dir` itself, so that the HParams dashboard
            finds the `validation/` and `train/` metrics under it.
        window: `(inputs, target)` of one validation window (batch 1) in numpy,
            or None for no output images.
        model_config: the model's `BiaxialConfig`.
        train_config: the `TrainConfig`.
        hparams: dict of hyperparameters to record at the start (None: none).

    Returns:
        A `keras.callbacks.Callback`.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from biax_keras import render, representation

    lowest, per_quarter = model_config.lowest_pitch, model_config.steps_per_quarter

    class RollSummaries(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "samples"))
            self.generate = _find_generate() if train_config.sample_every else None
            self.sample_failed = False

        def on_train_begin(self, logs=None):
            if hparams:
                _write_hparams(log_dir, hparams)

        def on_epoch_end(self, epoch, logs=None):
            number = epoch + 1
            if window is not None and train_config.image_every and number % train_config.image_every == 0:
                self._write_output(epoch)
            if self.generate and number % train_config.sample_every == 0:
                self._write_sample(epoch)
            self.writer.flush()

        def _write_output(self, epoch):
            inputs, target = window
            probabilities = np.asarray(self.model(inputs, training=False), np.float32)[0, :IMAGE_STEPS]
            truth = np.asarray(target, np.float32)[0, :IMAGE_STEPS]
            beat = np.asarray(inputs["beat"])[0, :IMAGE_STEPS]
            panels = [truth, probabilities[..., 0]]
            titles = ["true (validation window)", f"model P(play), epoch {epoch + 1}"]
            if not model_config.play_only:
                panels.append(probabilities[..., 1] * (truth[..., 0] > 0))
                titles.append("model P(articulate) where the true note plays")
            # The pitches of the true notes (widened to whole octaves) are
            # shown: an untrained model's haze would stretch the picture to
            # every note.
            picture = render.roll_image(*panels, titles=titles, lowest_pitch=lowest,
                                        beats=[beat] * len(panels), span_of=[0])
            with self.writer.as_default():
                tf.summary.image(OUTPUT_IMAGE_TAG, picture[None], step=epoch,
                                 description="The first bars of a fixed validation window: the "
                                 "true roll (struck dark, held light) above the model's "
                                 "probabilities (darker is likelier). Pitch up, time in bars.")

        def _write_sample(self, epoch):
            try:
                roll = self.generate(self.model, steps=train_config.sample_steps,
                                     seed=train_config.seed)
            except Exception as e:  # a sampler bug must not end a long training run
                if not self.sample_failed:
                    log.warning("sampling for TensorBoard failed (%s: %s); training goes on",
                                type(e).__name__, e)
                self.sample_failed = True
                return
            roll = np.asarray(roll)
            beat = representation.bar_positions(len(roll), per_quarter)
            picture = render.roll_image(
                roll, titles=[f"composed after epoch {epoch + 1} (seed {train_config.seed})"],
                lowest_pitch=lowest, beats=[beat])
            try:
                audio = render.roll_audio(roll, per_quarter, lowest)
            except Exception as e:  # no sound must not end a training run either
                log.warning("audio of the TensorBoard sample failed (%s: %s)", type(e).__name__, e)
                audio = None
            with self.writer.as_default():
                tf.summary.image(SAMPLE_IMAGE_TAG, picture[None], step=epoch,
                                 description=f"A piece composed with seed {train_config.seed}; "
                                 "struck dark, held light.")
                if audio is not None:
                    samples, rate, synth = audio
                    mono = samples.mean(axis=1, keepdims=True)
                    tf.summary.audio(SAMPLE_AUDIO_TAG, mono[None], rate, step=epoch,
                                     encoding="wav",
                                     description=f"The composed piece ({_SYNTH_NAMES[synth]}).")

    return RollSummaries()


_SYNTH_NAMES = {"soundfont": "General MIDI piano", "fluidsynth": "FluidSynth",
                "sine": "sine waves: no soundfont synthesizer installed"}


def _hparam_value(value):
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if value is None:
        return "none"
    return value


def hparams_of(model_config, train_config):
    """Flat hyperparameters of a run, for the TensorBoard hparams dashboard."""
    values = {f"model.{k}": _hparam_value(v) for k, v in model_config.to_dict().items()}
    values.update({f"train.{k}": _hparam_value(v) for k, v in train_config.to_dict().items()})
    return values


def _write_hparams(log_dir, values):
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    metrics = [hp.Metric("epoch_frame_nll", group="validation", display_name="valid frame NLL"),
               hp.Metric("epoch_frame_nll", group="train", display_name="train frame NLL")]
    with tf.summary.create_file_writer(str(log_dir)).as_default():
        hp.hparams_config(hparams=[hp.HParam(name) for name in values], metrics=metrics)
        hp.hparams(values, trial_id=Path(log_dir).name)


# ----------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------


def _first_window(dataset):
    """`(inputs, target)` of the first window of a dataset, batch 1, in numpy."""
    for inputs, target in dataset.take(1).as_numpy_iterator():
        return {k: v[:1] for k, v in inputs.items()}, target[:1]
    return None


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
    from biax_keras.model import build_model

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


def _config_with_init(config, init_config):
    """The run config with the network sizes of the model started from."""
    model_values, train_values = read_config(config)
    for key in ("time_units", "note_units", "beat_bits"):
        ours = getattr(init_config, key)
        given = model_values.get(key, ours)
        if (list(given) if isinstance(given, (list, tuple)) else given) != (
                list(ours) if isinstance(ours, tuple) else ours):
            raise UserError(f"the config's {key} {given} differs from the --init model's "
                            f"{list(ours) if isinstance(ours, tuple) else ours}; remove it")
        model_values[key] = list(ours) if isinstance(ours, tuple) else ours
    return {"model": model_values, "train": train_values}


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
