"""Generation: composing with a trained model, and serving it.

Its controls, `SamplingControls`, live in `biax_keras.sampling_controls`:
the model config (`nn`) holds a model's own, so they belong to no stage.

- `sampling`: the compiled sampler, loops over `BiaxialModel.step`
- `compose`: the one compose flow of `biax generate` and the studio
- `export`: the SavedModel with its serving signatures
"""
