"""The biaxial network's layers: note features, time axis, note axis, head.

Shapes use B for batch, T for time steps, N for notes, F for features. Every
layer shares its weights across notes (time axis) or across steps (note axis),
so none of them depends on N: a model trained on 78 notes runs on 88.

Each layer owns both of its forms: `call` runs whole sequences (training and
scoring), and the one-step form advances the same weights by one position
(`TimeAxisLSTM.step` one time step for every note, `NoteAxisLSTM.precompute`
+ `NoteAxisLSTM.step` one note, `PlayArticulateHead.logits` the head without
its sigmoid). `BiaxialModel.step` assembles them and the sampler only loops
over it; `tests/test_layers.py` checks that stepping equals `call`.
"""

import keras
from keras import ops

# The pitch-position feature is the MIDI pitch centred and scaled to about
# [-2, 2] over the piano, so it is independent of the note range in use.
_CENTRE_PITCH = 64.0
_PITCH_SCALE = 32.0
_PITCH_CLASSES = 12
# Neighbours at -12..+12 semitones: an octave either way.
_NEIGHBOUR_RADIUS = 12


def note_feature_size(beat_bits, pitch_position=True):
    """Number of features NoteFeatures makes per note and step."""
    neighbours = (2 * _NEIGHBOUR_RADIUS + 1) * 2
    return int(pitch_position) + _PITCH_CLASSES + neighbours + _PITCH_CLASSES + beat_bits


@keras.saving.register_keras_serializable(package="biax_keras")
class NoteFeatures(keras.layers.Layer):
    """Per-note inputs of the time axis, computed from the previous step's state.

    For every note and step it concatenates:

    - pitch position: the MIDI pitch, centred and scaled (1 value; left out
      with `pitch_position=False`, which leaves pitch class as the only
      absolute pitch information);
    - pitch class, one-hot (12);
    - play and articulate of the 25 notes at -12..+12 semitones, note itself
      included (50); neighbours outside the note range are zero;
    - how many notes of each pitch class sound, rotated so that index 0 is the
      note's own pitch class (12);
    - the bar position of the step being predicted as `beat_bits` binary
      digits, least significant first, mapped to -1/+1 (none with
      `beat_bits=0`).

    Everything is computed with tensor ops over whole rolls; nothing loops over
    notes or steps, and nothing depends on the number of notes.

    Args:
        lowest_pitch: int. MIDI pitch of note index 0.
        beat_bits: int. Binary digits of the bar position (6 covers bars of
            up to 64 steps; 0 gives the network no bar position).
        pitch_position: bool. Whether the scaled MIDI pitch is a feature.

    Call arguments:
        roll: float tensor `(B, T, N, 2)`, play and articulate of the
            previous steps.
        beat: int tensor `(B, T)`, bar position (in steps) of the steps being
            predicted.

    Returns:
        float tensor `(B, T, N, note_feature_size(beat_bits, pitch_position))`.

    Example:
    ```python
    roll = np.zeros((1, 4, 78, 2), "float32")
    beat = np.arange(4)[None]
    features = NoteFeatures(lowest_pitch=24)(roll, beat)  # (1, 4, 78, 81)
    ```

    References:
        D. Johnson, "Composing Music With Recurrent Neural Networks" (2015).
    """

    def __init__(self, lowest_pitch=24, beat_bits=6, pitch_position=True, **kwargs):
        super().__init__(**kwargs)
        self.lowest_pitch = int(lowest_pitch)
        self.beat_bits = int(beat_bits)
        self.pitch_position = bool(pitch_position)

    def call(self, roll, beat):
        roll = ops.cast(roll, self.compute_dtype)
        shape = ops.shape(roll)
        batch, steps, notes = shape[0], shape[1], shape[2]
        dtype = roll.dtype

        pitch = ops.arange(notes, dtype="int32") + self.lowest_pitch
        pitch_class = ops.mod(pitch, _PITCH_CLASSES)

        position = (ops.cast(pitch, dtype) - _CENTRE_PITCH) / _PITCH_SCALE
        position = position[:, None]
        class_one_hot = ops.one_hot(pitch_class, _PITCH_CLASSES, dtype=dtype)

        # Neighbours: pad the note axis with silence, then take 25 shifted views.
        padded = ops.pad(
            roll, [[0, 0], [0, 0], [_NEIGHBOUR_RADIUS, _NEIGHBOUR_RADIUS], [0, 0]]
        )
        neighbours = ops.concatenate(
            [
                padded[:, :, offset : offset + notes, :]
                for offset in range(2 * _NEIGHBOUR_RADIUS + 1)
            ],
            axis=-1,
        )

        # Sounding notes per pitch class, then rotated to each note's own class.
        class_counts = ops.einsum("btn,nc->btc", roll[..., 0], class_one_hot)
        rotation = ops.mod(
            pitch_class[:, None] + ops.arange(_PITCH_CLASSES, dtype="int32")[None, :],
            _PITCH_CLASSES,
        )
        context = ops.take(class_counts, rotation, axis=2)

        bits = ops.bitwise_and(
            ops.right_shift(
                ops.cast(beat, "int32")[..., None],
                ops.arange(self.beat_bits, dtype="int32"),
            ),
            1,
        )
        beat_features = ops.cast(bits, dtype) * 2.0 - 1.0

        per_note = ops.concatenate([position, class_one_hot], axis=-1)
        if not self.pitch_position:
            per_note = class_one_hot
        per_note = ops.broadcast_to(
            per_note[None, None],
            (batch, steps, notes, int(self.pitch_position) + _PITCH_CLASSES),
        )
        beat_features = ops.broadcast_to(
            beat_features[:, :, None, :], (batch, steps, notes, self.beat_bits)
        )
        return ops.concatenate([per_note, neighbours, context, beat_features], axis=-1)

    def compute_output_shape(self, roll_shape, beat_shape=None):
        return tuple(roll_shape[:3]) + (note_feature_size(self.beat_bits, self.pitch_position),)

    def get_config(self):
        config = super().get_config()
        config.update(lowest_pitch=self.lowest_pitch, beat_bits=self.beat_bits,
                      pitch_position=self.pitch_position)
        return config


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


@keras.saving.register_keras_serializable(package="biax_keras")
class TimeAxisLSTM(_LSTMStack):
    """LSTMs along time, with the same weights for every note.

    Reshapes `(B, T, N, F)` to `(B*N, T, F)`, runs the stack, reshapes back.

    Args:
        units: sequence of ints, units of each LSTM (default `(300, 300)`).
        dropout: float, dropout rate after each LSTM.

    Call arguments:
        features: float tensor `(B, T, N, F)`.
        training: bool, whether dropout is active.

    Returns:
        float tensor `(B, T, N, units[-1])`.

    Example:
    ```python
    layer = TimeAxisLSTM(units=(32, 32))
    out = layer(np.zeros((2, 16, 78, 81), "float32"))  # (2, 16, 78, 32)
    ```

    References:
        D. Johnson, "Composing Music With Recurrent Neural Networks" (2015).
    """

    def __init__(self, units=(300, 300), dropout=0.5, **kwargs):
        super().__init__(units, dropout, **kwargs)

    def build(self, features_shape):
        self._build_stack(features_shape[-1])

    def call(self, features, training=None):
        shape = ops.shape(features)
        batch, steps, notes = shape[0], shape[1], shape[2]
        x = ops.transpose(features, (0, 2, 1, 3))
        x = ops.reshape(x, (batch * notes, steps, features.shape[-1]))
        x = self._run_sequences(x, training)
        x = ops.reshape(x, (batch, notes, steps, self.units[-1]))
        return ops.transpose(x, (0, 2, 1, 3))

    def step(self, features, states):
        """One time step for every note (inference: no dropout).

        Args:
            features: `(B, N, F)` features of the step.
            states: `initial_state(B * N)` or what the previous `step` returned.

        Returns:
            `(outputs (B, N, units[-1]), new_states)`.
        """
        shape = ops.shape(features)
        x = ops.reshape(features, (shape[0] * shape[1], features.shape[-1]))
        x, states = self._step_stack(x, states)
        return ops.reshape(x, (shape[0], shape[1], self.units[-1])), states

    def compute_output_shape(self, features_shape):
        return tuple(features_shape[:3]) + (self.units[-1],)


@keras.saving.register_keras_serializable(package="biax_keras")
class NoteAxisLSTM(_LSTMStack):
    """LSTMs along the notes, low to high, with the same weights for every step.

    Each note's input is the time axis's output for it, followed by the play
    and articulate of the note just below it in the *target* step (teacher
    forcing; zeros below the lowest note).

    One note at a time (sampling, where the note below is the one just
    chosen): `precompute(time_outputs)` once per time step, then `step` for
    each note from low to high, starting from `initial_state(B)` and zeros
    below the lowest note.

    Args:
        units: sequence of ints, units of each LSTM (default `(100, 50)`).
        dropout: float, dropout rate after each LSTM.

    Call arguments:
        time_outputs: float tensor `(B, T, N, H)` from `TimeAxisLSTM`.
        target: float tensor `(B, T, N, 2)`, the steps being predicted.
        training: bool, whether dropout is active.

    Returns:
        float tensor `(B, T, N, units[-1])`.

    Example:
    ```python
    layer = NoteAxisLSTM(units=(16, 8))
    out = layer(np.zeros((2, 4, 78, 32)), np.zeros((2, 4, 78, 2)))  # (2, 4, 78, 8)
    ```

    References:
        D. Johnson, "Composing Music With Recurrent Neural Networks" (2015).
    """

    def __init__(self, units=(100, 50), dropout=0.5, **kwargs):
        super().__init__(units, dropout, **kwargs)

    def build(self, time_outputs_shape, target_shape=None):
        self._build_stack(time_outputs_shape[-1] + 2)

    def call(self, time_outputs, target, training=None):
        shape = ops.shape(time_outputs)
        batch, steps, notes = shape[0], shape[1], shape[2]
        target = ops.cast(target, time_outputs.dtype)
        below = ops.pad(target[:, :, :-1, :], [[0, 0], [0, 0], [1, 0], [0, 0]])
        x = ops.concatenate([time_outputs, below], axis=-1)
        x = ops.reshape(x, (batch * steps, notes, x.shape[-1]))
        x = self._run_sequences(x, training)
        return ops.reshape(x, (batch, steps, notes, self.units[-1]))

    def precompute(self, time_outputs):
        """The part of the first LSTM's input projection that the walk does not change.

        The first LSTM's input is `[time output, note below]`. Only the 2-wide
        note-below part depends on the notes chosen along the walk, so the
        time-output part of the projection (with the bias) is computed here
        for every note at once: one `(B*N, H) x (H, 4U)` matmul instead of N
        small ones, which is most of the note axis's arithmetic when stepping.

        Args:
            time_outputs: `(B, N, H)`, one time step of `TimeAxisLSTM`.

        Returns:
            `(projected, below_kernel)`: `projected` `(N, B, 4 * units[0])`,
            note-major so that each note's slice is contiguous, and the
            kernel's 2 note-below rows `(2, 4 * units[0])`, sliced once per
            step rather than once per note. `step` takes both.
        """
        cell = self.lstms[0].cell
        hidden = time_outputs.shape[-1]
        projected = ops.einsum("knh,hg->nkg", time_outputs, cell.kernel[:hidden]) + cell.bias
        return projected, cell.kernel[hidden:]

    def step(self, projected, below, states, below_kernel):
        """One note (inference: no dropout).

        Args:
            projected: `(B, 4 * units[0])`, this note's slice of `precompute`'s
                projection.
            below: `(B, 2)`, play and articulate of the note below (chosen or
                given); zeros for the lowest note.
            states: `initial_state(B)` or what the previous note's `step`
                returned.
            below_kernel: the note-below rows from `precompute`.

        Returns:
            `(outputs (B, units[-1]), new_states)`.
        """
        cell = self.lstms[0].cell
        (h, c), rest = states[0], states[1:]
        # The 2-wide part as two broadcasts: cheaper than a matmul this thin.
        z = (projected + below[:, :1] * below_kernel[0] + below[:, 1:] * below_kernel[1]
             + ops.matmul(h, cell.recurrent_kernel))
        h, c = _lstm_gates(cell, z, c)
        x, new_states = self._step_stack(h, rest, first=1)
        return x, [(h, c)] + new_states

    def compute_output_shape(self, time_outputs_shape, target_shape=None):
        return tuple(time_outputs_shape[:3]) + (self.units[-1],)


@keras.saving.register_keras_serializable(package="biax_keras")
class PlayArticulateHead(keras.layers.Layer):
    """Dense layer with a sigmoid: P(play) and P(articulate) for each note.

    `logits` is the layer without its sigmoid and `probabilities` the sigmoid,
    so that a sampler can scale the logits (temperature) in between.

    Args:
        None besides the usual layer arguments.

    Call arguments:
        x: float tensor `(..., units)`.

    Returns:
        float32 tensor `(..., 2)`: probabilities of play and of articulate
        (float32 under mixed precision too).

    Example:
    ```python
    probabilities = PlayArticulateHead()(np.zeros((2, 4, 78, 50)))  # (2, 4, 78, 2)
    ```
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Probabilities stay float32 under a mixed-precision policy: in bfloat16
        # or float16, 1 - 1e-7 rounds to 1 and the log-likelihood to infinity.
        self.dense = keras.layers.Dense(2, dtype="float32", name="dense")

    def build(self, input_shape):
        self.dense.build(input_shape)

    def logits(self, x):
        """`(..., 2)` logits of play and articulate."""
        return self.dense(x)

    @staticmethod
    def probabilities(logits):
        """`(..., 2)` probabilities from `logits`."""
        return ops.sigmoid(logits)

    def call(self, x):
        return self.probabilities(self.logits(x))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (2,)
