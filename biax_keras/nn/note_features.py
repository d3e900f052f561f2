"""NoteFeatures: what each note sees of the previous step.
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
