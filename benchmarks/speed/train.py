"""`biax benchmark train`: how fast a training step runs, against a floor.

Three measurements in one process, repeats interleaved, medians reported:

- **ours**: `train_on_batch` of `build_model()` (the default config, compiled
  with its loss and metrics, as `biax train` runs it) on random rolls of
  `batch x window x 78` notes;
- **floor**: the same network written the way earlier ports wrote it, a plain
  stack of `keras.layers.LSTM` with reshapes (`(B*N, T, F)` through
  LSTM(300) x 2, then `(B*T, N, 302)` through LSTM(100), LSTM(50), Dense(2)),
  fed precomputed note features, trained with binary cross-entropy. Ours must
  not be slower than it;
- **matmul**: a large float32 matrix product, the FLOP/s this machine can do.

Speed is in note-steps/s, one note at one predicted step (batch x window x
notes per batch). FLOPs count the matrix products of the LSTMs and the head,
which are nearly all of the work:

    forward FLOPs per note-step = sum over LSTMs of 2 * 4H * (I + H) + 2 * 2 * H_last

for an LSTM of H units on I inputs (a multiply-add is 2 FLOPs; the 4 gates
share one product with the input and one with the previous output). A
training step costs about 3x the forward pass (the backward pass computes a
gradient for the inputs and one for the weights, each the size of the
forward). So model FLOP/s = 3 * forward FLOPs * note-steps/s, and
utilization = model FLOP/s / matmul FLOP/s.
"""

import logging
import platform
import statistics
import time

log = logging.getLogger(__name__)

# Share of notes sounding in the random rolls: about 4 of 78, as in piano music.
PLAY_DENSITY = 0.05
# Side of the square matrices of the reference product: big enough to reach
# the machine's peak, small enough to take well under a second on a laptop.
MATMUL_SIZE = 2048
BACKWARD_FACTOR = 3


def add_arguments(parser):
    """Declare the benchmark's flags on an argparse parser."""
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs of each model, interleaved (default 3)")
    parser.add_argument("--batches", type=int, default=3,
                        help="training steps timed per run (default 3)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed training steps per model before timing (default 2)")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--num-notes", type=int, default=78)
    parser.add_argument("--config", default=None,
                        help="a config JSON ({\"model\": ...}) instead of the default model")
    parser.add_argument("--jit-compile", action="store_true",
                        help="compile both models' training steps with XLA")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="both models in mixed precision (bfloat16 on CPU, float16 on GPU)")


def forward_flops_per_note_step(config):
    """Forward-pass FLOPs per note-step of a model config (matrix products only).

    Args:
        config: a `BiaxialConfig`.

    Returns:
        int: FLOPs of the LSTMs' and the head's matrix products for one note
        at one step.
    """
    from biax_keras.nn.note_features import note_feature_size

    flops = 0
    inputs = note_feature_size(config.beat_bits)
    for units in config.time_units:
        flops += 2 * 4 * units * (inputs + units)
        inputs = units
    inputs += 2  # the note below's play/articulate
    for units in config.note_units:
        flops += 2 * 4 * units * (inputs + units)
        inputs = units
    return flops + 2 * inputs * 2


def floor_model(config):
    """The biaxial network as a plain stack of Keras LSTMs with reshapes.

    Args:
        config: a `BiaxialConfig` (sizes and dropout).

    Returns:
        An uncompiled `keras.Model` taking `{"features": (B, T, N, F),
        "target": (B, T, N, 2)}` and returning `(B, T, N, 2)` probabilities.
    """
    import keras
    from keras import ops

    class FloorModel(keras.Model):
        def __init__(self):
            super().__init__()
            self.time_lstms = [keras.layers.LSTM(u, return_sequences=True)
                               for u in config.time_units]
            self.note_lstms = [keras.layers.LSTM(u, return_sequences=True)
                               for u in config.note_units]
            self.drops = [keras.layers.Dropout(config.dropout)
                          for _ in config.time_units + config.note_units]
            self.dense = keras.layers.Dense(2, activation="sigmoid", dtype="float32")

        def call(self, inputs, training=None):
            features, target = inputs["features"], inputs["target"]
            batch, steps, notes, size = ops.shape(features)
            x = ops.reshape(ops.transpose(features, (0, 2, 1, 3)), (batch * notes, steps, size))
            drops = iter(self.drops)
            for lstm in self.time_lstms:
                x = next(drops)(lstm(x), training=training)
            x = ops.transpose(ops.reshape(x, (batch, notes, steps, -1)), (0, 2, 1, 3))
            below = ops.pad(target[:, :, :-1], [[0, 0], [0, 0], [1, 0], [0, 0]])
            x = ops.reshape(ops.concatenate([x, below], -1), (batch * steps, notes, -1))
            for lstm in self.note_lstms:
                x = next(drops)(lstm(x), training=training)
            return self.dense(ops.reshape(x, (batch, steps, notes, -1)))

    return FloorModel()


def _random_batch(batch_size, window, num_notes, beat_bits, seed=0):
    import numpy as np
    import tensorflow as tf

    from biax_keras.nn.note_features import note_feature_size

    rng = np.random.default_rng(seed)
    play = rng.random((batch_size, window + 1, num_notes)) < PLAY_DENSITY
    articulate = play & (rng.random(play.shape) < 0.5)
    roll = np.stack([play, articulate], -1).astype("float32")
    beat = np.tile(np.arange(window) % 16, (batch_size, 1)).astype("int32")
    inputs = {"roll": tf.constant(roll[:, :-1]), "beat": tf.constant(beat),
              "target": tf.constant(roll[:, 1:])}
    features = rng.standard_normal(
        (batch_size, window, num_notes, note_feature_size(beat_bits))).astype("float32")
    floor_inputs = {"features": tf.constant(features), "target": inputs["target"]}
    return inputs, floor_inputs, inputs["target"]


def matmul_timer():
    """A function that times one float32 `MATMUL_SIZE`-square product, in seconds."""
    import tensorflow as tf

    a = tf.random.stateless_normal([MATMUL_SIZE, MATMUL_SIZE], seed=[1, 2])
    b = tf.random.stateless_normal([MATMUL_SIZE, MATMUL_SIZE], seed=[3, 4])
    product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    product().numpy()

    def timed():
        started = time.perf_counter()
        product().numpy()
        return time.perf_counter() - started

    return timed


def run(args):
    """Run the benchmark.

    Args:
        args: the parsed flags of `add_arguments`.

    Returns:
        A JSON-able dict: shapes, per-model seconds per step, note-steps/s and
        GFLOP/s, the matmul GFLOP/s, utilizations and `ours_over_floor` (the
        speed ratio; above 1 means ours is faster).
    """
    import json

    import keras
    import tensorflow as tf

    from biax_keras.errors import UserError
    from biax_keras.nn.model import BiaxialConfig, build_model

    for name in ("repeats", "batches", "batch_size", "window", "num_notes"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be positive")
    config = BiaxialConfig()
    if args.config:
        try:
            with open(args.config) as f:
                config = BiaxialConfig.from_dict(json.load(f).get("model", {}))
        except (OSError, ValueError, AttributeError) as e:
            raise UserError(f"cannot read --config {args.config}: {e}") from None

    keras.utils.set_random_seed(0)
    previous_policy = keras.config.dtype_policy()
    policy = None
    if args.mixed_precision:
        policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
        keras.config.set_dtype_policy(policy)
    try:
        ours = build_model(config)
        floor = floor_model(config)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    floor.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=1.0),
                  loss="binary_crossentropy")
    if args.jit_compile:
        ours.jit_compile = floor.jit_compile = True
    inputs, floor_inputs, target = _random_batch(
        args.batch_size, args.window, args.num_notes, config.beat_bits)
    steps = {"ours": lambda: ours.train_on_batch(inputs, target),
             "floor": lambda: floor.train_on_batch(floor_inputs, target)}
    for step in steps.values():
        for _ in range(max(args.warmup, 1)):  # the first step traces and builds
            step()
    log.info("benchmark train: %s parameters (ours), %s (floor)",
             f"{ours.count_params():,}", f"{floor.count_params():,}")

    matmul_seconds = matmul_timer()
    times = {name: [] for name in steps}
    matmul_rates = []
    for repeat in range(args.repeats):
        # Alternate which model goes first, so neither always gets a cool CPU;
        # the reference product runs between them, under the same conditions.
        order = list(steps) if repeat % 2 == 0 else list(reversed(steps))
        for index, name in enumerate(order):
            started = time.perf_counter()
            for _ in range(args.batches):
                steps[name]()
            times[name].append((time.perf_counter() - started) / args.batches)
            log.info("  repeat %d %s: %.3f s/step", repeat, name, times[name][-1])
            if index == 0:
                matmul_rates.extend(2 * MATMUL_SIZE**3 / matmul_seconds() for _ in range(5))

    matmul = statistics.median(matmul_rates)
    note_steps = args.batch_size * args.window * args.num_notes
    forward = forward_flops_per_note_step(config)
    result = {
        "config": config.to_dict(),
        "batch_size": args.batch_size, "window": args.window, "num_notes": args.num_notes,
        "note_steps_per_batch": note_steps,
        "forward_flops_per_note_step": forward,
        "train_flops_per_note_step": BACKWARD_FACTOR * forward,
        "jit_compile": bool(args.jit_compile),
        "dtype_policy": policy or "float32",
        "matmul_gflops": matmul / 1e9,
        "device": _device(tf),
        "tensorflow": tf.__version__, "keras": keras.__version__,
    }
    for name, seconds in times.items():
        per_step = statistics.median(seconds)
        rate = note_steps / per_step
        flops = BACKWARD_FACTOR * forward * rate
        result[name] = {"seconds_per_step": per_step, "all_seconds_per_step": seconds,
                        "note_steps_per_s": rate, "gflops": flops / 1e9,
                        "utilization": flops / matmul}
    result["ours_over_floor"] = result["floor"]["seconds_per_step"] / result["ours"]["seconds_per_step"]
    return result


def _device(tf):
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
                 for g in gpus]
        return "GPU: " + ", ".join(names)
    return f"CPU: {platform.processor() or platform.machine()}, {_cores()} cores"


def _cores():
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()
