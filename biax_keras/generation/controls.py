"""The sampling controls' former home: `SamplingControls` lives in `biax_keras.sampling_controls`.

The model config holds a model's own controls, so they moved out of this
stage; this path still imports the same objects.
"""

from biax_keras.sampling_controls import VERSION, SamplingControls, control  # noqa: F401
