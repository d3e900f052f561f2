"""Compiled generation: step-by-step decoding of a biaxial model.

    import biax_keras
    model = biax_keras.load_model("runs/bach")
    roll = biax_keras.generate(model, steps=480, seed=1, temperature=1.0)

The network is decoded one time step at a time with every LSTM state carried,
never recomputing the past. One step is:

1. `NoteFeatures` of the previous step, for all `K * N` rows at once (K
   samples in parallel, N notes);
2. one step of the time-axis LSTMs for those rows;
3. a walk along the note axis from low to high: each note's play and
   articulate are decided (sampled, or read from a given roll when scoring)
   and fed to the next note's input.

`StepDecoder.decode_step` is that step, and both `StepDecoder.sample` (which
samples) and `StepDecoder.score` (which feeds a given roll and returns the
probabilities) are loops over it. `tests/test_generate.py` checks that
`score` equals the teacher-forced `model(inputs)`, which is what makes the
sampler trustworthy.

Sampling. Each note's logits are divided by the temperature before the
sigmoid. As in Johnson's original, P(play) is then raised to the power of the
*conservativity* `c`: `c > 1` plays fewer notes, `c < 1` more. A note
articulates only if it plays. With `adaptive=True`, each sample's exponent
drifts to avoid long silences, in the spirit of the original's
`gen_adaptive`: after a step in which fewer than `ADAPTIVE_MIN_SOUNDING` notes
sound, `c <- max(min(c, c0) - ADAPTIVE_DECREMENT, ADAPTIVE_FLOOR)`; after a
step with enough notes, `c <- c + ADAPTIVE_RELAX * (c0 - c)`, so it returns
towards the requested conservativity `c0` once music plays.

Randomness. Step `t` of the piece (primer included) draws its uniform numbers
with `tf.random.stateless_uniform(shape=(K, N, 2), seed=(seed, t),
alg="philox")` inside the compiled function; note `n` of sample `k` uses
element `(k, n)`. Philox numbers depend only on the seed and their position,
so sample `k` sees the same numbers whatever `K` is: `generate(model, steps,
seed=s)` equals sample 0 of `generate_batch(model, 16, steps, seed=s)`, and
the same seed gives the same piece on the same machine and TensorFlow version,
in the package and from an exported SavedModel alike. (XLA's Philox differs
from TensorFlow's own kernel, so `StepDecoder(model, jit_scope="none")` draws
other, equally valid, pieces.)

Speed. Everything runs compiled by XLA (`JIT_SCOPE`): a 60 s piece of the
default-size model takes under a second on a 2-core CPU once compiled, and
compiling takes a few seconds, once per batch size and note count. The first
note-LSTM's input projection is split so that its large part is one matmul
per step (see `walk_notes`).
"""

import logging
import math
import os
import sys
import types
import weakref
from typing import NamedTuple

import numpy as np

from biax_keras.errors import UserError
from biax_keras import render

log = logging.getLogger(__name__)

# Adaptive conservativity (see the module docstring). Fewer than two sounding
# notes counts as silence, as in the original; the exponent then falls by
# 0.02 a step, and relaxes back by 30% of the gap once notes sound again.
ADAPTIVE_MIN_SOUNDING = 2
ADAPTIVE_DECREMENT = 0.02
ADAPTIVE_RELAX = 0.3
# P ** c needs c > 0 (c = 0 would play every note); the exponent stops here.
ADAPTIVE_FLOOR = 0.02

DEFAULT_BPM = 120.0
# `biax generate` composes a minute of music unless told otherwise.
DEFAULT_SECONDS = 60.0
DEFAULT_TIME_SIGNATURE = (4, 4)
SECONDS_PER_MINUTE = 60.0

# What XLA compiles (see `StepDecoder`). "chunk" runs as fast as compiling the
# whole piece (measured with `biax benchmark generate`; see BENCHMARKS.md) but
# compiles once per batch size and note count, whatever the piece's length,
# where "piece" compiles again for every new length (seconds each time).
JIT_SCOPE = "chunk"
# Steps sampled per call of the compiled chunk: a 4/4 bar. Each call costs
# ~0.1 ms of launch overhead; 16 steps make it negligible.
STEPS_PER_CALL = 16
# The note walk is a loop whose body is unrolled over this many notes.
NOTES_PER_ITERATION = 2


def steps_for_seconds(seconds, bpm=DEFAULT_BPM, steps_per_quarter=4):
    """Number of steps in `seconds` of music at `bpm` quarter notes per minute.

    Args:
        seconds: length in seconds (> 0).
        bpm: tempo in quarter notes per minute (> 0).
        steps_per_quarter: the model's steps per quarter note.

    Returns:
        int, at least 1: 480 for 60 s at 120 bpm and 4 steps per quarter.

    Raises:
        UserError: for a length or tempo that is not positive and finite.
    """
    if not (math.isfinite(seconds) and seconds > 0):
        raise UserError(f"the length in seconds must be positive, got {seconds}")
    if not (math.isfinite(bpm) and bpm > 0):
        raise UserError(f"the tempo (bpm) must be positive, got {bpm}")
    return max(1, int(round(seconds * bpm / SECONDS_PER_MINUTE * steps_per_quarter)))


class Primer(NamedTuple):
    """A primer read from MIDI, in a model's note range.

    Attributes:
        roll: np.uint8 `(steps, num_notes, 2)`.
        beat: np.int32 `(steps,)`, bar position of each step.
        notes_dropped: notes of the file outside the model's range.
    """

    roll: np.ndarray
    beat: np.ndarray
    notes_dropped: int


def read_primer(path, config, num_notes=None):
    """Read a MIDI primer into a model's note range.

    Args:
        path: a MIDI file.
        config: the model's `BiaxialConfig`.
        num_notes: notes of the roll (default: the model's `num_notes`).

    Returns:
        A `Primer`. Notes outside the range are dropped and counted.

    Raises:
        UserError: the file does not exist, is not MIDI, has no notes, or has
            no notes inside the model's range.
    """
    from biax_keras import representation

    num_notes = int(num_notes or config.num_notes)
    top = config.lowest_pitch + num_notes - 1
    if not os.path.isfile(path):
        raise UserError(f"primer {path} does not exist or is not a file")
    try:
        sequence = representation.read_midi(path, config.steps_per_quarter)
        result = representation.note_sequence_to_roll(
            sequence, config.steps_per_quarter, config.lowest_pitch, num_notes)
    except representation.OutOfRangeError:
        raise UserError(
            f"primer {path}: every note lies outside the model's range "
            f"(MIDI {config.lowest_pitch}..{top}); nothing to continue from") from None
    except representation.RepresentationError as e:
        raise UserError(f"primer {path} cannot be used: {e}") from None
    except OSError as e:
        raise UserError(f"primer {path} cannot be read: {e.strerror or e}") from None
    if not result.roll[..., 0].any():
        raise UserError(f"primer {path} has no notes in the model's range "
                        f"(MIDI {config.lowest_pitch}..{top})")
    return Primer(result.roll, result.beat, int(result.notes_dropped))


# ----------------------------------------------------------------------------
# The decoder
# ----------------------------------------------------------------------------


def _lstm_update(cell, z, c):
    """New `(h, c)` of a Keras LSTM cell from its gate pre-activations `z`.

    Keras orders the gates input, forget, candidate, output; this is the same
    arithmetic as `keras.layers.LSTMCell` after its matmuls.
    """
    import tensorflow as tf

    i, f, g, o = tf.split(z, 4, axis=-1)
    c = cell.recurrent_activation(f) * c + cell.recurrent_activation(i) * cell.activation(g)
    h = cell.recurrent_activation(o) * cell.activation(c)
    return h, c


class StepDecoder:
    """Step-by-step decoding of a `BiaxialModel` with its weights, compiled.

    The decoder reads the model's variables at every call, so it follows the
    model when it trains. It is cheap to build; the compiled functions are
    traced on first use for each note count.

    Args:
        model: a built `BiaxialModel`.
        jit_scope: what XLA compiles (default `JIT_SCOPE`): `"piece"` the
            whole loop over steps; `"chunk"` `STEPS_PER_CALL` steps at a time
            (and each primer step), the loop over chunks staying in
            TensorFlow; `"none"` nothing.
        notes_per_iteration: notes unrolled in each iteration of the note
            walk's loop (default `NOTES_PER_ITERATION`; the note count or more
            unrolls the whole walk).
    """

    def __init__(self, model, jit_scope=None, notes_per_iteration=None):
        self.model = model
        self.config = model.config
        self.jit_scope = jit_scope or JIT_SCOPE
        if self.jit_scope not in ("piece", "chunk", "none"):
            raise ValueError(f"jit_scope must be 'piece', 'chunk' or 'none', got {jit_scope!r}")
        self._jit_parts = None
        self.notes_per_iteration = int(notes_per_iteration or NOTES_PER_ITERATION)
        self._time_cells = [lstm.cell for lstm in model.time_axis.lstms]
        self._note_cells = [lstm.cell for lstm in model.note_axis.lstms]
        self._sample_fns = {}
        self._score_fns = {}

    # -- one step ------------------------------------------------------------

    def advance_time(self, previous, beat, states):
        """One time-axis step for every sample and note.

        Args:
            previous: `(K, N, 2)` float, the step before the one predicted.
            beat: `(K,)` int32, bar position of the predicted step.
            states: per LSTM `(h, c)`, each `(K * N, units)`.

        Returns:
            `(time_outputs (K, N, H), new_states)`.
        """
        import tensorflow as tf

        features = self.model.note_features(previous[:, None], beat[:, None])
        # Decoding runs in float32 even for a model trained in mixed precision
        # (its variables are float32; only its compute dtype is not).
        features = tf.cast(features, tf.float32)
        shape = tf.shape(previous)
        x = tf.reshape(features, (shape[0] * shape[1], features.shape[-1]))
        new_states = []
        for cell, (h, c) in zip(self._time_cells, states):
            z = tf.matmul(x, cell.kernel) + tf.matmul(h, cell.recurrent_kernel) + cell.bias
            h, c = _lstm_update(cell, z, c)
            new_states.append((h, c))
            x = h
        return tf.reshape(x, (shape[0], shape[1], x.shape[-1])), new_states

    def walk_notes(self, time_outputs, given, choose):
        """The note axis, low to high, each note fed the decision below it.

        Args:
            time_outputs: `(K, N, H)` from `advance_time`.
            given: `(K, N, D)` per-note data handed to `choose` (the uniform
                numbers when sampling, the roll's step when scoring).
            choose: `choose(logits, given_n) -> decision`, with `logits` and
                the decision `(K, 2)`; the decision (0/1 play and articulate)
                is fed to the next note.

        Returns:
            `(logits (K, N, 2), decisions (K, N, 2))`.
        """
        import tensorflow as tf

        first, rest = self._note_cells[0], self._note_cells[1:]
        hidden = time_outputs.shape[-1]
        num_notes = time_outputs.shape[1]
        # Why the split: the first note-LSTM's input is [time output, note
        # below]. The time-output part does not depend on the walk, so its
        # projection for all notes is one (K*N, H) x (H, 4U) matmul here, and
        # inside the walk only the 2-wide part and the recurrent matmuls remain.
        # This turns N small matmuls into one large one, which is most of the
        # note walk's arithmetic. Note-major (N, K, .) so each note's slice is
        # contiguous.
        projected = tf.einsum("knh,hg->nkg", time_outputs, first.kernel[:hidden]) + first.bias
        given = tf.transpose(given, (1, 0, 2))
        below_kernel = first.kernel[hidden:]
        head = self.model.head.dense

        def note(projected_n, given_n, below, states):
            # The 2-wide part as two broadcasts: cheaper than a matmul this thin.
            z = (projected_n + below[:, :1] * below_kernel[0] + below[:, 1:] * below_kernel[1]
                 + tf.matmul(states[0][0], first.recurrent_kernel))
            h, c = _lstm_update(first, z, states[0][1])
            new_states = [(h, c)]
            x = h
            for cell, (h, c) in zip(rest, states[1:]):
                z = tf.matmul(x, cell.kernel) + tf.matmul(h, cell.recurrent_kernel) + cell.bias
                h, c = _lstm_update(cell, z, c)
                new_states.append((h, c))
                x = h
            logits = tf.matmul(x, head.kernel) + head.bias
            return logits, choose(logits, given_n), new_states

        def notes(index, count, below, states):
            """`count` consecutive notes from `index`, unrolled in the graph."""
            all_logits, decisions = [], []
            for j in range(count):
                logits, below, states = note(projected[index + j], given[index + j], below, states)
                all_logits.append(logits)
                decisions.append(below)
            return tf.stack(all_logits), tf.stack(decisions), below, states

        batch = tf.shape(time_outputs)[0]
        states = [(tf.zeros((batch, cell.units)), tf.zeros((batch, cell.units)))
                  for cell in self._note_cells]
        below = tf.zeros((batch, 2))
        per_iteration = min(self.notes_per_iteration, num_notes)
        # Whole groups go through the loop, the remainder is unrolled after it.
        groups, remainder = divmod(num_notes, per_iteration)
        if groups == 1:
            logits, decisions, below, states = notes(0, per_iteration, below, states)
        else:
            logits_array = tf.TensorArray(tf.float32, size=groups)
            decision_array = tf.TensorArray(tf.float32, size=groups)

            def body(i, below, states, logits_array, decision_array):
                logits, decisions, below, states = notes(i * per_iteration, per_iteration,
                                                         below, states)
                return (i + 1, below, states, logits_array.write(i, logits),
                        decision_array.write(i, decisions))

            _, below, states, logits_array, decision_array = tf.while_loop(
                lambda i, *_: i < groups, body,
                (tf.constant(0), below, states, logits_array, decision_array))
            shape = (groups * per_iteration, batch, 2)
            logits = tf.reshape(logits_array.stack(), shape)
            decisions = tf.reshape(decision_array.stack(), shape)
        if remainder:
            tail_logits, tail_decisions, _, _ = notes(num_notes - remainder, remainder,
                                                      below, states)
            logits = tf.concat([logits, tail_logits], axis=0)
            decisions = tf.concat([decisions, tail_decisions], axis=0)
        return tf.transpose(logits, (1, 0, 2)), tf.transpose(decisions, (1, 0, 2))

    def decode_step(self, previous, beat, states, given, choose):
        """One whole step: time axis, then the note walk.

        Args:
            previous: `(K, N, 2)`, the step before.
            beat: `(K,)`, bar position of the step decoded.
            states: the time-axis states.
            given, choose: see `walk_notes`.

        Returns:
            `(logits (K, N, 2), decisions (K, N, 2), new_states)`.
        """
        time_outputs, states = self.advance_time(previous, beat, states)
        logits, decisions = self.walk_notes(time_outputs, given, choose)
        return logits, decisions, states

    def initial_states(self, rows):
        """Zero `(h, c)` of each time-axis LSTM for `rows` rows."""
        import tensorflow as tf

        return [(tf.zeros((rows, cell.units)), tf.zeros((rows, cell.units)))
                for cell in self._time_cells]

    # -- scoring: the given roll fed instead of samples ----------------------

    def _score_graph(self, roll, beat, target):
        import tensorflow as tf

        shape = tf.shape(roll)
        batch, steps, notes = shape[0], shape[1], shape[2]
        # Time-major, so that the loop reads one step at a time.
        roll_t = tf.transpose(roll, (1, 0, 2, 3))
        beat_t = tf.transpose(beat)
        target_t = tf.transpose(target, (1, 0, 2, 3))
        out = tf.TensorArray(roll.dtype, size=steps, element_shape=roll_t.shape[1:])

        def body(t, states, out):
            logits, _, states = self.decode_step(
                roll_t[t], beat_t[t], states, target_t[t], lambda logits, target: target)
            return t + 1, states, out.write(t, tf.sigmoid(logits))

        _, _, out = tf.while_loop(
            lambda t, *_: t < steps, body, (0, self.initial_states(batch * notes), out))
        return tf.transpose(out.stack(), (1, 0, 2, 3))

    def score(self, roll, beat, target):
        """Probabilities by step-by-step decoding, fed the given roll.

        The same inputs and result as `model(inputs, training=False)`.

        Args:
            roll: `(B, T, N, 2)`, the steps before those predicted.
            beat: `(B, T)`, bar positions of the predicted steps.
            target: `(B, T, N, 2)`, the predicted steps (fed along the notes).

        Returns:
            np.float32 `(B, T, N, 2)` probabilities of play and articulate.
        """
        import tensorflow as tf

        roll = tf.convert_to_tensor(roll, tf.float32)
        notes = roll.shape[2]
        if notes not in self._score_fns:
            self._score_fns[notes] = tf.function(
                self._score_graph, jit_compile=self.jit_scope != "none", reduce_retracing=True)
        return self._score_fns[notes](
            roll, tf.convert_to_tensor(beat, tf.int32),
            tf.convert_to_tensor(target, tf.float32)).numpy()

    # -- sampling ------------------------------------------------------------

    def primer_step(self, previous, beat, states):
        """Feeds one primer step through the time axis (its notes are given,
        so the note walk, which only decides notes, is not needed).

        Args:
            previous: `(K, N, 2)`; beat: `(K,)`; states: the time-axis states.

        Returns:
            The new time-axis states.
        """
        return self.advance_time(previous, beat, states)[1]

    def sample_step(self, previous, beat, states, exponent, uniform, temperature,
                    conservativity, adaptive):
        """Samples one step and adapts the conservativity exponent.

        Args:
            previous: `(K, N, 2)` float, the step before.
            beat: `(K,)` int32, bar position of this step.
            states: the time-axis states.
            exponent: `(K,)`, the exponent on P(play) now.
            uniform: `(K, N, 2)` uniform numbers in [0, 1) for this step.
            temperature: scalar > 0.
            conservativity: `(K,)`, the requested exponents.
            adaptive: bool scalar.

        Returns:
            `(step (K, N, 2) float 0/1, new_states, new_exponent)`.
        """
        import tensorflow as tf

        def choose(logits, uniform):
            p = tf.sigmoid(logits / temperature)
            play = tf.cast(uniform[:, 0] < tf.pow(p[:, 0], exponent), tf.float32)
            articulate = play * tf.cast(uniform[:, 1] < p[:, 1], tf.float32)
            return tf.stack([play, articulate], axis=-1)

        _, step, states = self.decode_step(previous, beat, states, uniform, choose)
        sounding = tf.reduce_sum(step[..., 0], axis=-1)
        quiet = tf.maximum(tf.minimum(exponent, conservativity) - ADAPTIVE_DECREMENT,
                           ADAPTIVE_FLOOR)
        relaxed = exponent + ADAPTIVE_RELAX * (conservativity - exponent)
        adapted = tf.where(sounding < ADAPTIVE_MIN_SOUNDING, quiet, relaxed)
        return step, states, tf.where(adaptive, adapted, conservativity)

    def sample_chunk(self, previous, beat, start, count, states, exponent, seed, temperature,
                     conservativity, adaptive):
        """Samples `count <= C` consecutive steps, `C` being the length of `beat`.

        Step `t` of the piece draws its uniform numbers from the seed pair
        `(seed, t)`, so a piece does not depend on how it is cut into chunks.

        Args:
            previous: `(K, N, 2)` float, the step before the first.
            beat: `(C,)` int32, bar positions of the chunk's steps.
            start: int32 scalar, the piece's index of the first step.
            count: int32 scalar, steps to sample.
            states, exponent: as for `sample_step`.
            seed: int64 scalar.
            temperature, conservativity, adaptive: as for `sample_step`.

        Returns:
            `(steps (C, K, N, 2) uint8 (zeros after count), previous, states, exponent)`.
        """
        import tensorflow as tf

        batch, notes = tf.shape(previous)[0], previous.shape[1]
        steps = tf.zeros(tf.concat([tf.shape(beat), tf.shape(previous)], axis=0), tf.uint8)

        def body(c, previous, states, exponent, steps):
            uniform = tf.random.stateless_uniform(
                (batch, notes, 2), tf.stack([seed, tf.cast(start + c, tf.int64)]), alg="philox")
            step, states, exponent = self.sample_step(
                previous, tf.fill((batch,), beat[c]), states, exponent, uniform, temperature,
                conservativity, adaptive)
            steps = tf.tensor_scatter_nd_update(steps, [[c]], tf.cast(step, tf.uint8)[None])
            return c + 1, step, states, exponent, steps

        _, previous, states, exponent, steps = tf.while_loop(
            lambda c, *_: c < count, body, (0, previous, states, exponent, steps))
        return steps, previous, states, exponent

    def sample_graph(self, primer, beat, seed, temperature, conservativity, adaptive):
        """The sampler as graph code: the primer, then the new steps.

        With `jit_scope="piece"` this whole function is one XLA computation,
        so every size comes from an input's shape (never from a value): `P`
        from the primer, `S` from the beats, `K` from the conservativity.

        Args:
            primer: `(P, N, 2)` float32, the opening (P may be 0).
            beat: `(P + S,)` int32, bar positions of the whole piece.
            seed: int64 scalar.
            temperature: float32 scalar, > 0.
            conservativity: `(K,)` float32, each sample's exponent on P(play).
            adaptive: bool scalar, adapt the exponent to avoid silences.

        Returns:
            `(K, S, N, 2)` uint8, the new steps of each sample.
        """
        import tensorflow as tf

        primer_step, sample_chunk = self._compiled_parts()
        primer_steps = tf.shape(primer)[0]
        total = tf.shape(beat)[0]
        batch = tf.shape(conservativity)[0]
        notes = primer.shape[1]
        states = self.initial_states(batch * notes)
        # The model's input for step t is step t - 1, and silence before the
        # first: `before[t]`. (Also never empty, which XLA needs: it compiles
        # the primer loop's slicing even when there is no primer.)
        before = tf.concat([tf.zeros((1, notes, 2)), primer], axis=0)

        def primer_body(t, states):
            previous = tf.broadcast_to(before[t], (batch, notes, 2))
            return t + 1, primer_step(previous, tf.fill((batch,), beat[t]), states)

        _, states = tf.while_loop(lambda t, *_: t < primer_steps, primer_body, (0, states))
        previous = tf.broadcast_to(before[primer_steps], (batch, notes, 2))

        chunk = STEPS_PER_CALL
        new_steps = total - primer_steps
        chunks = (new_steps + chunk - 1) // chunk
        new_beat = tf.pad(beat[primer_steps:], [[0, chunks * chunk - new_steps]])
        seed = tf.cast(seed, tf.int64)

        def body(i, previous, states, exponent, out):
            first = i * chunk
            steps, previous, states, exponent = sample_chunk(
                previous, tf.slice(new_beat, [first], [chunk]), primer_steps + first,
                tf.minimum(chunk, new_steps - first), states, exponent, seed, temperature,
                conservativity, adaptive)
            return i + 1, previous, states, exponent, out.write(i, steps)

        out = tf.TensorArray(tf.uint8, size=chunks,
                             element_shape=tf.TensorShape([chunk, None, notes, 2]))
        _, _, _, _, out = tf.while_loop(
            lambda i, *_: i < chunks, body, (0, previous, states, conservativity, out))
        steps = tf.reshape(out.stack(), (chunks * chunk, batch, notes, 2))[:new_steps]
        return tf.transpose(steps, (1, 0, 2, 3))

    def _compiled_parts(self):
        """`(primer_step, sample_chunk)`, each its own XLA computation when
        `jit_scope="chunk"`, else the plain methods (inlined in the caller)."""
        import tensorflow as tf

        if self.jit_scope != "chunk":
            return self.primer_step, self.sample_chunk
        if self._jit_parts is None:
            self._jit_parts = (
                tf.function(self.primer_step, jit_compile=True, reduce_retracing=True),
                tf.function(self.sample_chunk, jit_compile=True, reduce_retracing=True),
            )
        return self._jit_parts

    def sample_function(self, num_notes):
        """The compiled sampler for `num_notes` notes (traced once per count)."""
        import tensorflow as tf

        if num_notes not in self._sample_fns:
            self._sample_fns[num_notes] = tf.function(
                self.sample_graph,
                jit_compile=self.jit_scope == "piece",
                input_signature=[
                    tf.TensorSpec((None, num_notes, 2), tf.float32, name="primer"),
                    tf.TensorSpec((None,), tf.int32, name="beat"),
                    tf.TensorSpec((), tf.int64, name="seed"),
                    tf.TensorSpec((), tf.float32, name="temperature"),
                    tf.TensorSpec((None,), tf.float32, name="conservativity"),
                    tf.TensorSpec((), tf.bool, name="adaptive"),
                ],
            )
        return self._sample_fns[num_notes]

    def sample(self, num_samples, steps, seed=0, temperature=1.0, conservativity=1.0,
               adaptive=False, primer=None, primer_beat=None, num_notes=None,
               time_signature=DEFAULT_TIME_SIGNATURE):
        """Sample `num_samples` pieces; see `generate_batch` for the arguments.

        Returns:
            np.uint8 `(K, P + steps, N, 2)`, each piece opening with the primer.
        """
        from biax_keras import representation

        notes, primer, primer_beat = _checked_primer(self.config, primer, primer_beat, num_notes)
        beat = np.concatenate([
            primer_beat,
            representation.bar_positions(
                steps, self.config.steps_per_quarter, time_signature,
                offset=int(primer_beat[-1]) + 1 if len(primer_beat) else 0),
        ]).astype(np.int32)
        new = self.sample_function(notes)(
            primer.astype(np.float32), beat, np.int64(seed), np.float32(temperature),
            np.full((num_samples,), conservativity, np.float32), np.bool_(adaptive),
        ).numpy()
        opening = np.broadcast_to(primer.astype(np.uint8), (num_samples,) + primer.shape)
        return np.concatenate([opening, new], axis=1)


# ----------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------

# One decoder (and its compiled functions) per model, dropped with the model.
_DECODERS = weakref.WeakKeyDictionary()


def decoder_for(model):
    """The `StepDecoder` of a Keras `BiaxialModel`, built once and cached."""
    decoder = _DECODERS.get(model)
    if decoder is None:
        decoder = _DECODERS[model] = StepDecoder(model)
    return decoder


def _check_controls(num_samples, steps, seed, temperature, conservativity):
    for name, value in (("num_samples", num_samples), ("steps", steps)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise UserError(f"{name} must be a whole number, got {value!r}")
        if value <= 0:
            raise UserError(f"{name} must be positive, got {value}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise UserError(f"seed must be a whole number, got {seed!r}")
    if not -2**63 <= int(seed) < 2**63:
        raise UserError(f"seed must fit in 64 bits, got {seed}")
    for name, value in (("temperature", temperature), ("conservativity", conservativity)):
        if not isinstance(value, (int, float, np.number)) or isinstance(value, bool) \
                or not (math.isfinite(value) and value > 0):
            raise UserError(f"{name} must be a positive number, got {value!r}")


def _checked_primer(config, primer, primer_beat, num_notes):
    """`(num_notes, primer roll (P, N, 2), primer beat (P,))` from what a caller gave.

    `primer` may be None, a MIDI path, a roll, or a `(roll, beat)` pair; a
    roll without beats gets the 4/4 bar positions from 0.
    """
    from biax_keras import representation

    if isinstance(primer, (str, os.PathLike)):
        read = read_primer(os.fspath(primer), config, num_notes)
        if read.notes_dropped:
            log.warning("primer: %d notes outside the model's range dropped", read.notes_dropped)
        primer, primer_beat = read.roll, read.beat
    elif isinstance(primer, tuple) and len(primer) == 2 and primer_beat is None:
        primer, primer_beat = primer
    if primer is None:
        notes = int(num_notes or config.num_notes)
        return notes, np.zeros((0, notes, 2), np.uint8), np.zeros((0,), np.int32)
    primer = np.asarray(primer)
    if primer.ndim != 3 or primer.shape[2] != 2 or primer.shape[0] == 0:
        raise UserError(f"a primer roll has shape (steps > 0, notes, 2), got {primer.shape}")
    if num_notes is not None and primer.shape[1] != num_notes:
        raise UserError(f"the primer has {primer.shape[1]} notes but num_notes is {num_notes}")
    if not np.isin(primer, (0, 1)).all():
        raise UserError("a primer roll holds only 0 and 1")
    if (primer[..., 1] > primer[..., 0]).any():
        raise UserError("the primer articulates notes that do not play")
    if primer_beat is None:
        primer_beat = representation.bar_positions(len(primer), config.steps_per_quarter)
    primer_beat = np.asarray(primer_beat, np.int32)
    if primer_beat.shape != (len(primer),):
        raise UserError(f"the primer's beat must have shape ({len(primer)},), got {primer_beat.shape}")
    return primer.shape[1], primer.astype(np.uint8), primer_beat


def generate_batch(model, num_samples, steps, seed=0, temperature=1.0, conservativity=1.0,
                   adaptive=False, primer=None, num_notes=None, primer_beat=None,
                   time_signature=DEFAULT_TIME_SIGNATURE):
    """Compose `num_samples` pieces in parallel.

    Args:
        model: a `BiaxialModel`, or what `biax_keras.load_model` returns
            (which may be an exported SavedModel).
        num_samples: K, pieces sampled together.
        steps: new steps to compose *after* the primer (the primer does not
            count).
        seed: int; the same seed gives the same pieces, and sample k does not
            depend on how many samples are drawn with it.
        temperature: > 0; logits are divided by it (small: nearly
            deterministic, large: nearly uniform).
        conservativity: > 0; P(play) is raised to this power (> 1 plays
            fewer notes).
        adaptive: lower the conservativity after silent steps and let it
            return when notes sound (see the module docstring).
        primer: None, a MIDI path, a roll `(P, N, 2)` or a `(roll, beat)`
            pair. Its steps are fed first and kept as the opening of every
            piece. Notes of a MIDI primer outside the model's range are
            dropped with a warning (use `read_primer` to get the count).
        num_notes: notes of the roll (default: the model's `num_notes`, or the
            primer's).
        primer_beat: bar positions of a roll primer (default: 4/4 from 0).
        time_signature: the bar that the new steps' positions follow; they
            continue from the primer's last position.

    Returns:
        np.uint8 `(K, P + steps, N, 2)`: play and articulate; articulate is 1
        only where play is.

    Raises:
        UserError: for a control out of range or a primer that cannot be used.
    """
    _check_controls(num_samples, steps, seed, temperature, conservativity)
    if hasattr(model, "generate_batch"):  # an exported SavedModel
        return model.generate_batch(
            num_samples, steps, seed=seed, temperature=temperature,
            conservativity=conservativity, adaptive=adaptive, primer=primer,
            num_notes=num_notes, primer_beat=primer_beat, time_signature=time_signature)
    return decoder_for(model).sample(
        int(num_samples), int(steps), seed=int(seed), temperature=float(temperature),
        conservativity=float(conservativity), adaptive=bool(adaptive), primer=primer,
        primer_beat=primer_beat, num_notes=num_notes, time_signature=time_signature)


def generate(model, steps, seed=0, temperature=1.0, conservativity=1.0, adaptive=False,
             primer=None, num_notes=None, primer_beat=None,
             time_signature=DEFAULT_TIME_SIGNATURE):
    """Compose one piece: `generate_batch` with one sample.

    Args:
        See `generate_batch`; `steps` are new steps after the primer.

    Returns:
        np.uint8 `(P + steps, N, 2)`.

    Raises:
        UserError: for a control out of range or a primer that cannot be used.
    """
    return generate_batch(
        model, 1, steps, seed=seed, temperature=temperature, conservativity=conservativity,
        adaptive=adaptive, primer=primer, num_notes=num_notes, primer_beat=primer_beat,
        time_signature=time_signature)[0]


def score(model, roll, beat, target):
    """Teacher-forced probabilities by step-by-step decoding (the sampler's machinery).

    Args:
        model: a `BiaxialModel`.
        roll, beat, target: the inputs of `model(inputs)`.

    Returns:
        np.float32 `(B, T, N, 2)`, equal to `model(inputs, training=False)`.
    """
    return decoder_for(model).score(roll, beat, target)


# ----------------------------------------------------------------------------
# Files: what `biax generate` does
# ----------------------------------------------------------------------------

MIDI_SUFFIXES = (".mid", ".midi")
def output_paths(out, num_samples):
    """The MIDI files `compose` writes: `out` itself, or `NAME-1.mid` ... `NAME-K.mid`.

    Raises:
        UserError: `out` does not end in .mid or .midi.
    """
    out = os.fspath(out)
    stem, suffix = os.path.splitext(out)
    if suffix.lower() not in MIDI_SUFFIXES:
        raise UserError(f"--out must name a .mid or .midi file, got {out}")
    if num_samples == 1:
        return [out]
    return [f"{stem}-{i}{suffix}" for i in range(1, num_samples + 1)]


def compose(model_path, out, steps=None, seconds=None, bpm=DEFAULT_BPM, seed=0,
            temperature=1.0, conservativity=1.0, adaptive=False, primer_path=None,
            num_samples=1, wav=False, soundfont=None):
    """Load a model, compose, and write MIDI (and WAV) files: `biax generate`.

    Everything a user can get wrong is checked before the model runs, and
    each file is written under a temporary name and renamed. Every MIDI file
    is written before any audio is rendered, so audio cannot lose the music:
    if rendering fails, the error names the MIDI files already written.

    Args:
        model_path: a `.keras` file, run folder or exported SavedModel.
        out: the .mid file to write (`NAME-1.mid` ... for several samples).
        steps: new steps to compose, or None to use `seconds`.
        seconds: length of the new music at `bpm` (used when `steps` is None).
        bpm: tempo in quarter notes per minute, also written to the MIDI.
        seed, temperature, conservativity, adaptive: see `generate_batch`.
        primer_path: a MIDI file to continue, or None.
        num_samples: pieces to compose in parallel.
        wav: also render each piece to a .wav beside its .mid
            (`render.choose_synth("auto")`: the soundfont piano where
            installed, sine waves as a warned last resort).
        soundfont: the .sf2 for `wav`.

    Returns:
        A JSON-able dict describing what was written.

    Raises:
        UserError: for anything wrong in the arguments, the model or the primer.
    """
    import time

    import biax_keras
    from biax_keras import representation

    paths = output_paths(out, num_samples)
    folder = os.path.dirname(os.path.abspath(paths[0]))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f"cannot write {paths[0]}: {folder} is not a folder")
    synth = None
    if wav:
        soundfont = render.check_audio(soundfont)
        synth = render.choose_synth("auto")  # says so when only sine waves are left
    if not (math.isfinite(bpm) and bpm > 0):
        raise UserError(f"the tempo (bpm) must be positive, got {bpm}")
    model = biax_keras.load_model(model_path)
    config = model.config
    if steps is None:
        steps = steps_for_seconds(DEFAULT_SECONDS if seconds is None else seconds, bpm,
                                  config.steps_per_quarter)
    _check_controls(num_samples, steps, seed, temperature, conservativity)

    primer, notes_dropped = None, 0
    if primer_path is not None:
        read = read_primer(primer_path, config)
        notes_dropped = read.notes_dropped
        if notes_dropped:
            top = config.lowest_pitch + config.num_notes - 1
            log.warning("warning: %d notes of primer %s lie outside the model's range "
                        "(MIDI %d..%d) and were dropped", notes_dropped, primer_path,
                        config.lowest_pitch, top)
        primer = (read.roll, read.beat)

    started = time.perf_counter()
    rolls = generate_batch(model, num_samples, steps, seed=seed, temperature=temperature,
                           conservativity=conservativity, adaptive=adaptive, primer=primer)
    generate_seconds = time.perf_counter() - started

    os.makedirs(folder, exist_ok=True)
    pieces = []
    for roll, path in zip(rolls, paths):
        representation.roll_to_midi(roll, path, config.steps_per_quarter, config.lowest_pitch,
                                    qpm=bpm, time_signature=DEFAULT_TIME_SIGNATURE)
        pieces.append({"midi": path,
                       "notes": int(np.sum(roll[..., 1])),
                       "silent_steps": int(np.sum(~roll[..., 0].any(axis=-1)))})
    if wav:
        for piece in pieces:
            wav_path = os.path.splitext(piece["midi"])[0] + ".wav"
            try:
                render.render_wav(piece["midi"], wav_path, soundfont, synth=synth)
            except Exception as e:  # whatever the synthesizer raises, the MIDI stays
                written = ", ".join(p["midi"] for p in pieces)
                reason = " ".join(str(e).split())[:200] or type(e).__name__
                raise UserError(f"wrote {written}, but could not render {wav_path} ({reason}); "
                                f"render it later with `biax render {piece['midi']}`") from None
            piece["wav"] = wav_path

    primer_steps = 0 if primer is None else len(primer[0])
    seconds_per_step = SECONDS_PER_MINUTE / bpm / config.steps_per_quarter
    return {
        "pieces": pieces,
        "steps": int(steps),
        "primer_steps": primer_steps,
        "seconds": (primer_steps + steps) * seconds_per_step,
        "bpm": bpm,
        "seed": int(seed),
        "temperature": temperature,
        "conservativity": conservativity,
        "adaptive": bool(adaptive),
        "num_samples": num_samples,
        "primer": primer_path,
        "primer_notes_dropped": notes_dropped,
        "synth": synth,
        "generate_seconds": round(generate_seconds, 3),
    }


class _CallableModule(types.ModuleType):
    """`biax_keras.generate` names both this module and the function `generate`.

    Importing a submodule sets the package's attribute to the module, which
    would hide the package-level function; making the module callable keeps
    `biax_keras.generate(model, steps, ...)` working after any import.
    """

    def __call__(self, model, steps, **kwargs):
        return generate(model, steps, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
