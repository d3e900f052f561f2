"""`--strategy`: tf.distribute strategies, and the cluster of a multi-worker run.

`make_strategy` builds the default, Mirrored or MultiWorkerMirrored strategy
(`TF_CONFIG` checked first by `read_tf_config`).
"""

import json
import logging
import os
import sys
import time

from biax_keras.errors import UserError

log = logging.getLogger(__name__)


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
