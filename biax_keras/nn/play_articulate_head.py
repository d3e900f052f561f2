"""PlayArticulateHead: P(play) and P(articulate) of every note and step.
"""

import keras
from keras import ops


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
