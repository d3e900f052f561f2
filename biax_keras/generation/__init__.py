"""Generation: composing with a trained model, and serving it.

- `controls`: `SamplingControls`, each control defined once
- `sampling`: the compiled sampler, loops over `BiaxialModel.step`
- `compose`: the one compose flow of `biax generate` and the studio
- `export`: the SavedModel with its serving signatures
"""
