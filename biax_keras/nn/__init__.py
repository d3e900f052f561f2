"""The network: one Keras layer per file, the model that assembles them, its config.

- `config`: `BiaxialConfig`, what a model is (no TensorFlow needed to read it)
- `note_features`, `time_axis_lstm`, `note_axis_lstm`, `play_articulate_head`:
  the four layers, each with its sequence form (`call`) and its one-step form
- `lstm_stack`: the LSTM maths the two axes share
- `model`: `BiaxialModel`, its frame-NLL loss and metrics, `build_model`

Importing this package imports nothing else: Keras loads with `model` or a
layer, so the command line reads a config without TensorFlow.
"""
