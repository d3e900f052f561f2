"""biax_keras: the biaxial recurrent network for polyphonic music, in Keras 3.

    import biax_keras
    model = biax_keras.load_model("runs/bach")
    roll = biax_keras.generate(model, steps=480, seed=1)
"""

import os as _os

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
