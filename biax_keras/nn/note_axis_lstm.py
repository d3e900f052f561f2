"""NoteAxisLSTM: LSTMs along the notes, low to high, with weights shared by every step.
"""

import keras
from keras import ops

from biax_keras.nn.lstm_stack import _lstm_gates, _LSTMStack


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
