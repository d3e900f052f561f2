"""A stack of LSTMs with dropout between them, in sequence and one-step forms:
the maths `TimeAxisLSTM` and `NoteAxisLSTM` share.

The gates are computed from Keras's own `LSTMCell` weights (`_lstm_gates`),
so that stepping one position and running a whole sequence are the same sums.
Dropout masks are drawn a byte per element (`_ByteDropout`).
"""

import keras
from keras import ops

# Dropout masks are drawn a byte per element: rates are rounded to 1/256ths.
_MASK_LEVELS = 256


class _ByteDropout(keras.layers.Layer):
    """Dropout that draws one random byte per element instead of one float.

    Keras's `Dropout` draws a float32 per element. Behind every LSTM of this
    model that is 30 million draws per training step (10 x 128 x 78 x 300),
    about 5% of the step on a CPU. Four bytes of each 32-bit random number
    serve four elements here, which makes the mask 2.5x cheaper. The rate is
    rounded to a multiple of 1/256 (0.5 stays exact) and kept elements are
    scaled by the rounded keep probability, so the expected output still
    equals the input.

    Args:
        rate: float in [0, 1), the fraction of elements zeroed in training.
        seed: int or None, seed of the layer's `SeedGenerator`.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.dropped_levels = min(int(round(self.rate * _MASK_LEVELS)), _MASK_LEVELS - 1)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or self.dropped_levels == 0:
            return x
        # TensorFlow's own ops: keras.ops has no bitcast, and its uniform draws
        # are floats; a byte per element is what makes masks cheap here.
        import tensorflow as tf

        seed = tf.cast(self.seed_generator.next(), tf.int64)
        size = tf.size(x)
        words = tf.random.stateless_uniform(
            [(size + 3) // 4], seed, minval=None, maxval=None, dtype=tf.uint32)
        levels = tf.reshape(tf.bitcast(words, tf.uint8), [-1])[:size]
        keep = tf.reshape(levels >= self.dropped_levels, tf.shape(x))
        scale = _MASK_LEVELS / (_MASK_LEVELS - self.dropped_levels)
        return tf.where(keep, x * tf.cast(scale, x.dtype), tf.zeros_like(x))

    def compute_output_shape(self, input_shape):
        return input_shape


def _lstm_gates(cell, z, c):
    """New `(h, c)` of a Keras LSTM cell from its gate pre-activations `z`.

    `z` is `inputs @ kernel + h @ recurrent_kernel + bias`, gates ordered
    input, forget, candidate, output: the arithmetic `keras.layers.LSTMCell`
    does after its matmuls. It is written out because the note axis's step
    brings its own input projection (see `NoteAxisLSTM.precompute`), which
    the Keras cell has no way to accept; the tests hold it equal to the cell.
    """
    i, f, g, o = ops.split(z, 4, axis=-1)
    c = cell.recurrent_activation(f) * c + cell.recurrent_activation(i) * cell.activation(g)
    h = cell.recurrent_activation(o) * cell.activation(c)
    return h, c


class _LSTMStack(keras.layers.Layer):
    """A stack of LSTMs with dropout after each, run over sequences or stepped."""

    def __init__(self, units, dropout=0.5, **kwargs):
        super().__init__(**kwargs)
        self.units = tuple(int(u) for u in units)
        self.dropout = float(dropout)
        self.lstms = [
            keras.layers.LSTM(u, return_sequences=True, name=f"lstm_{i}")
            for i, u in enumerate(self.units)
        ]
        self.dropouts = [
            _ByteDropout(self.dropout, name=f"dropout_{i}") for i in range(len(self.units))
        ]

    def _build_stack(self, input_size):
        for lstm in self.lstms:
            lstm.build((None, None, input_size))
            input_size = lstm.units

    def _run_sequences(self, x, training):
        for lstm, dropout in zip(self.lstms, self.dropouts):
            x = dropout(lstm(x, training=training), training=training)
        return x

    def initial_state(self, rows):
        """Zero `(h, c)` of each LSTM of the stack, for `rows` rows.

        Steps run in the variables' dtype (float32), also for a model trained
        in mixed precision.
        """
        return [
            (ops.zeros((rows, u), self.variable_dtype), ops.zeros((rows, u), self.variable_dtype))
            for u in self.units
        ]

    def _step_stack(self, x, states, first=0):
        """LSTMs `first...` of the stack, one position, from inputs `x` (no dropout)."""
        new_states = []
        for lstm, (h, c) in zip(self.lstms[first:], states):
            cell = lstm.cell
            z = ops.matmul(x, cell.kernel) + ops.matmul(h, cell.recurrent_kernel) + cell.bias
            h, c = _lstm_gates(cell, z, c)
            new_states.append((h, c))
            x = h
        return x, new_states

    def get_config(self):
        config = super().get_config()
        config.update(units=list(self.units), dropout=self.dropout)
        return config
