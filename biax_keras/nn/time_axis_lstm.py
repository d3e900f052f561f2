"""TimeAxisLSTM: LSTMs along time, with weights shared by every note.
"""

import keras
from keras import ops

from biax_keras.nn.lstm_stack import _LSTMStack


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
