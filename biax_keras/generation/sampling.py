"""The sampler: loops over `BiaxialModel.step`, XLA chunks and random numbers.

    import biax_keras
    model = biax_keras.load_model("runs/bach")
    roll = biax_keras.generate(model, steps=480, seed=1, temperature=1.0)

The network's maths lives in its layers; `BiaxialModel.step` is one time step
(note features, the time axis one step for every note, then the note axis
walked from low to high, each note decided by a `choose` function and fed to
the next). This module only loops over it:

- `Sampler.score` feeds a given roll (choose = the target), which must equal
  the teacher-forced `model(inputs)`: `tests/test_sampling.py` checks it,
  and it is what makes the sampler trustworthy;
- `Sampler.sample` feeds the primer's steps through the time axis, then
  samples the new steps, carrying every LSTM state, never recomputing the past.

Sampling. Each note's logits are divided by the temperature before the
sigmoid. As in Johnson's original, P(play) is then raised to the power of the
*conservativity* `c`: `c > 1` plays fewer notes, `c < 1` more. A note
articulates only if it plays; a play-only model (trained on rolls without
articulation, its articulate output untrained) never articulates, and a
primer's articulation is hidden from it, so that it is fed what it learned
from. With `adaptive=True`, each sample's exponent
drifts to avoid long silences, in the spirit of the original's
`gen_adaptive`: after a step in which fewer than `ADAPTIVE_MIN_SOUNDING` notes
sound, `c <- max(min(c, c0) - ADAPTIVE_DECREMENT, ADAPTIVE_FLOOR)`; after a
step with enough notes, `c <- c + ADAPTIVE_RELAX * (c0 - c)`, so it returns
towards the requested conservativity `c0` once music plays. `min_pitch` and
`max_pitch` confine the new notes to a range of MIDI pitches. These controls
travel together as one `SamplingControls` (`biax_keras/sampling_controls.py`, where each is
defined once), from `biax generate` to the compiled sampler and into the
exported signatures.

Randomness. Step `t` of the piece (primer included) draws its uniform numbers
with `tf.random.stateless_uniform(shape=(K, N, 2), seed=(seed, t),
alg="philox")` inside the compiled function; note `n` of sample `k` uses
element `(k, n)`. Philox numbers depend only on the seed and their position,
so sample `k` sees the same numbers whatever `K` is: `generate(model, steps,
seed=s)` equals sample 0 of `generate_batch(model, 16, steps, seed=s)`, and
the same seed gives the same piece on the same machine and TensorFlow version,
in the package and from an exported SavedModel alike. (XLA's Philox differs
from TensorFlow's own kernel, so `Sampler(model, jit_scope="none")` draws
other, equally valid, pieces.)

Speed. `STEPS_PER_CALL` steps at a time (and each primer step) run as one XLA
computation, compiled once per batch size and note count: a 60 s piece of the
default-size model takes under a second on a 2-core CPU once compiled, and
compiling takes a few seconds.
"""

import math
import os
import weakref

import numpy as np

from biax_keras.errors import UserError
from biax_keras.sampling_controls import SamplingControls
from biax_keras.music import representation

# Adaptive conservativity (see the module docstring). Fewer than two sounding
# notes counts as silence, as in the original; the exponent then falls by
# 0.02 a step, and relaxes back by 30% of the gap once notes sound again.
ADAPTIVE_MIN_SOUNDING = 2
ADAPTIVE_DECREMENT = 0.02
ADAPTIVE_RELAX = 0.3
# P ** c needs c > 0 (c = 0 would play every note); the exponent stops here.
ADAPTIVE_FLOOR = 0.02

DEFAULT_BPM = 120.0
DEFAULT_TIME_SIGNATURE = (4, 4)
SECONDS_PER_MINUTE = 60.0

# What XLA compiles: "chunk", STEPS_PER_CALL steps per XLA computation (the
# loop over chunks stays in TensorFlow), or "none". Chunks run as fast as
# compiling the whole piece did (measured with `biax benchmark generate`) but
# compile once per batch size and note count, whatever the piece's length.
JIT_SCOPE = "chunk"
# Steps sampled per call of the compiled chunk: a 4/4 bar. Each call costs
# ~0.1 ms of launch overhead; 16 steps make it negligible.
STEPS_PER_CALL = 16


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


class Sampler:
    """Compiled loops over a `BiaxialModel`'s step function.

    The sampler reads the model's variables at every call, so it follows the
    model when it trains. It is cheap to build; its compiled functions are
    traced on first use for each note count.

    Args:
        model: a built `BiaxialModel`.
        jit_scope: `"chunk"` (default, `JIT_SCOPE`): `STEPS_PER_CALL` steps
            (and each primer step) are one XLA computation; `"none"`: no XLA.
        notes_per_iteration: notes unrolled in each iteration of the note
            walk (default: the model's `NOTES_PER_ITERATION`).
    """

    def __init__(self, model, jit_scope=None, notes_per_iteration=None):
        self.model = model
        self.jit_scope = jit_scope or JIT_SCOPE
        if self.jit_scope not in ("chunk", "none"):
            raise ValueError(f"jit_scope must be 'chunk' or 'none', got {jit_scope!r}")
        self.notes_per_iteration = notes_per_iteration
        # Compiled functions per note count: the note walk is unrolled for
        # a known N, so each count has its own trace.
        self._parts = {}
        self._sample_fns = {}
        self._score_fns = {}

    def _step(self, previous, beat, states, given, choose, style):
        return self.model.step(previous, beat, states, choose, given,
                               notes_per_iteration=self.notes_per_iteration, style=style)

    def style_size(self):
        """S, the length of the model's style input (0 for a model without styles)."""
        return len(self.model.config.styles or ())

    # -- scoring: the given roll fed instead of samples ----------------------

    def _score_graph(self, roll, beat, target, style):
        import tensorflow as tf

        shape = tf.shape(roll)
        batch, steps, notes = shape[0], shape[1], roll.shape[2]
        # Time-major, so that the loop reads one step at a time.
        roll_t = tf.transpose(roll, (1, 0, 2, 3))
        beat_t = tf.transpose(beat)
        target_t = tf.transpose(target, (1, 0, 2, 3))
        out = tf.TensorArray(roll.dtype, size=steps, element_shape=roll_t.shape[1:])

        def body(t, states, out):
            logits, _, states = self._step(roll_t[t], beat_t[t], states, target_t[t],
                                           lambda logits, target: target, style)
            return t + 1, states, out.write(t, self.model.head.probabilities(logits))

        _, _, out = tf.while_loop(
            lambda t, *_: t < steps, body, (0, self.model.initial_state(batch * notes), out))
        return tf.transpose(out.stack(), (1, 0, 2, 3))

    def score(self, roll, beat, target, style=None):
        """Probabilities by stepping, fed the given roll: `model(inputs)` step by step.

        Args:
            roll: `(B, T, N, 2)`, the steps before those predicted.
            beat: `(B, T)`, bar positions of the predicted steps.
            target: `(B, T, N, 2)`, the predicted steps (fed along the notes).
            style: `(B, S)` style weights of a style model (None otherwise).

        Returns:
            np.float32 `(B, T, N, 2)` probabilities of play and articulate.
        """
        import tensorflow as tf

        roll = tf.convert_to_tensor(roll, tf.float32)
        notes = int(roll.shape[2])
        if notes not in self._score_fns:
            self._score_fns[notes] = tf.function(
                self._score_graph, jit_compile=self.jit_scope != "none",
                input_signature=[tf.TensorSpec((None, None, notes, 2), tf.float32),
                                 tf.TensorSpec((None, None), tf.int32),
                                 tf.TensorSpec((None, None, notes, 2), tf.float32),
                                 tf.TensorSpec((None, self.style_size()), tf.float32)])
        if style is None:
            style = np.zeros((roll.shape[0], self.style_size()), np.float32)
        return self._score_fns[notes](
            roll, tf.convert_to_tensor(beat, tf.int32),
            tf.convert_to_tensor(target, tf.float32),
            tf.convert_to_tensor(style, tf.float32)).numpy()

    # -- sampling ------------------------------------------------------------

    def primer_step(self, previous, beat, states, style):
        """Feeds one primer step through the time axis: its notes are given,
        so the note walk, which only decides notes, is not needed."""
        return self.model.step_time(previous, beat, states, style)[1]

    def sample_step(self, previous, beat, states, exponent, uniform, controls, style):
        """Samples one step and adapts the conservativity exponent.

        Args:
            previous: `(K, N, 2)` float, the step before.
            beat: `(K,)` int32, bar position of this step.
            states: the time-axis states.
            exponent: `(K,)`, the exponent on P(play) now.
            uniform: `(K, N, 2)` uniform numbers in [0, 1) for this step.
            controls: `{name: scalar tensor}` of `SamplingControls`.
            style: `(K, S)` style weights (S = 0 for a model without styles).

        Returns:
            `(step (K, N, 2) float 0/1, new_states, new_exponent)`.
        """
        import tensorflow as tf

        probabilities = self.model.head.probabilities
        play_only = self.model.config.play_only

        # Notes outside the pitch range asked for draw a uniform number of 1,
        # which no probability exceeds: they never play. (Inside it, or with
        # the whole range, the numbers are the ones drawn.)
        pitch = self.model.config.lowest_pitch + tf.range(tf.shape(uniform)[1])
        outside = (pitch < controls["min_pitch"]) | (pitch > controls["max_pitch"])
        uniform = tf.where(outside[None, :, None], tf.ones_like(uniform), uniform)

        def choose(logits, uniform):
            p = probabilities(logits / controls["temperature"])
            play = tf.cast(uniform[:, 0] < tf.pow(p[:, 0], exponent), tf.float32)
            if play_only:
                # The network never trained its articulate output: the
                # pieces carry no articulation drawn from it.
                articulate = tf.zeros_like(play)
            else:
                articulate = play * tf.cast(uniform[:, 1] < p[:, 1], tf.float32)
            return tf.stack([play, articulate], axis=-1)

        _, step, states = self._step(previous, beat, states, uniform, choose, style)
        conservativity = controls["conservativity"]
        sounding = tf.reduce_sum(step[..., 0], axis=-1)
        quiet = tf.maximum(tf.minimum(exponent, conservativity) - ADAPTIVE_DECREMENT,
                           ADAPTIVE_FLOOR)
        relaxed = exponent + ADAPTIVE_RELAX * (conservativity - exponent)
        adapted = tf.where(sounding < ADAPTIVE_MIN_SOUNDING, quiet, relaxed)
        return step, states, tf.where(controls["adaptive"], adapted, exponent)

    def sample_chunk(self, previous, beat, start, count, states, exponent, seed, controls,
                     style):
        """Samples `count <= C` consecutive steps, `C` being the length of `beat`.

        Step `t` of the piece draws its uniform numbers from the seed pair
        `(seed, t)`, so a piece does not depend on how it is cut into chunks.

        Args:
            previous: `(K, N, 2)` float, the step before the first.
            beat: `(C,)` int32, bar positions of the chunk's steps.
            start: int32 scalar, the piece's index of the first step.
            count: int32 scalar, steps to sample.
            states, exponent, controls, style: as for `sample_step`.
            seed: int64 scalar.

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
                previous, tf.fill((batch,), beat[c]), states, exponent, uniform, controls,
                style)
            steps = tf.tensor_scatter_nd_update(steps, [[c]], tf.cast(step, tf.uint8)[None])
            return c + 1, step, states, exponent, steps

        _, previous, states, exponent, steps = tf.while_loop(
            lambda c, *_: c < count, body, (0, previous, states, exponent, steps))
        return steps, previous, states, exponent

    def _compiled_parts(self, num_notes):
        """`(primer_step, sample_chunk)` for `num_notes`, each its own XLA
        computation (or the plain methods with `jit_scope="none"`)."""
        import tensorflow as tf

        if self.jit_scope == "none":
            return self.primer_step, self.sample_chunk
        if num_notes not in self._parts:
            rolls = tf.TensorSpec((None, num_notes, 2), tf.float32)
            beats = tf.TensorSpec((None,), tf.int32)
            scalar = tf.TensorSpec((), tf.int32)
            states = [(tf.TensorSpec((None, u), tf.float32),) * 2
                      for u in self.model.config.time_units]
            exponent = tf.TensorSpec((None,), tf.float32)
            style = tf.TensorSpec((None, self.style_size()), tf.float32)
            self._parts[num_notes] = (
                tf.function(self.primer_step, jit_compile=True,
                            input_signature=[rolls, beats, states, style]),
                tf.function(self.sample_chunk, jit_compile=True, input_signature=[
                    rolls, beats, scalar, scalar, states, exponent,
                    tf.TensorSpec((), tf.int64), SamplingControls.tensor_specs(), style]),
            )
        return self._parts[num_notes]

    def sample_graph(self, primer, primer_beat, steps, steps_per_bar, num_samples, seed,
                     controls, style):
        """The sampler as graph code: the primer, then the new steps.

        Args:
            primer: `(P, N, 2)` float32, the opening (P may be 0).
            primer_beat: `(P,)` int32, its bar positions.
            steps: int32 scalar, new steps to sample.
            steps_per_bar: int32 scalar; the new steps' bar positions continue
                the primer's last (from 0 without a primer) in bars this long.
            num_samples: int32 scalar, K.
            seed: int64 scalar.
            controls: `{name: scalar tensor}` of `SamplingControls`.
            style: `(S,)` float32, the style weights every sample composes
                with (S = 0 for a model without styles).

        Returns:
            `(K, steps, N, 2)` uint8, the new steps of each sample.
        """
        import tensorflow as tf

        notes = primer.shape[1]
        primer_step, sample_chunk = self._compiled_parts(notes)
        primer_steps = tf.shape(primer)[0]
        batch = num_samples
        style = tf.broadcast_to(style[None], (batch, self.style_size()))
        states = self.model.initial_state(batch * notes)
        # The model's input for step t is step t - 1, and silence before the
        # first: `before[t]` (a play-only network is not shown the primer's
        # articulation; the pieces keep it).
        before = representation.prepend_silence(primer)

        def primer_body(t, states):
            previous = tf.broadcast_to(before[t], (batch, notes, 2))
            return t + 1, primer_step(previous, tf.fill((batch,), primer_beat[t]), states, style)

        _, states = tf.while_loop(lambda t, *_: t < primer_steps, primer_body, (0, states))
        previous = tf.broadcast_to(before[primer_steps], (batch, notes, 2))

        chunk = STEPS_PER_CALL
        chunks = (steps + chunk - 1) // chunk
        offset = tf.cond(primer_steps > 0, lambda: primer_beat[-1] + 1, lambda: 0)
        new_beat = (offset + tf.range(chunks * chunk)) % steps_per_bar
        seed = tf.cast(seed, tf.int64)

        def body(i, previous, states, exponent, out):
            first = i * chunk
            new, previous, states, exponent = sample_chunk(
                previous, tf.slice(new_beat, [first], [chunk]), primer_steps + first,
                tf.minimum(chunk, steps - first), states, exponent, seed, controls, style)
            return i + 1, previous, states, exponent, out.write(i, new)

        out = tf.TensorArray(tf.uint8, size=chunks,
                             element_shape=tf.TensorShape([chunk, None, notes, 2]))
        exponent = tf.fill((batch,), controls["conservativity"])
        _, _, _, _, out = tf.while_loop(
            lambda i, *_: i < chunks, body, (0, previous, states, exponent, out))
        new = tf.reshape(out.stack(), (chunks * chunk, batch, notes, 2))[:steps]
        return tf.transpose(new, (1, 0, 2, 3))

    def sample_function(self, num_notes):
        """`sample_graph` for `num_notes` notes as one `tf.function` (traced once)."""
        import tensorflow as tf

        if num_notes not in self._sample_fns:
            scalar = tf.TensorSpec((), tf.int32)
            self._sample_fns[num_notes] = tf.function(self.sample_graph, input_signature=[
                tf.TensorSpec((None, num_notes, 2), tf.float32, name="primer"),
                tf.TensorSpec((None,), tf.int32, name="primer_beat"),
                scalar, scalar, scalar, tf.TensorSpec((), tf.int64, name="seed"),
                SamplingControls.tensor_specs(),
                tf.TensorSpec((self.style_size(),), tf.float32, name="style")])
        return self._sample_fns[num_notes]

    def sample(self, num_samples, steps, seed, controls, primer, primer_beat,
               time_signature=DEFAULT_TIME_SIGNATURE, style=None):
        """Sample `num_samples` pieces (checked arguments; see `generate_batch`).

        Returns:
            np.uint8 `(K, P + steps, N, 2)`, each piece opening with the primer.
        """

        steps_per_bar = representation.bar_steps(time_signature,
                                                 self.model.config.steps_per_quarter)
        new = self.sample_function(primer.shape[1])(
            primer.astype(np.float32), primer_beat, np.int32(steps), np.int32(steps_per_bar),
            np.int32(num_samples), np.int64(seed), controls.tensors(),
            np.zeros((0,), np.float32) if style is None else np.asarray(style, np.float32)).numpy()
        opening = np.broadcast_to(primer.astype(np.uint8), (num_samples,) + primer.shape)
        return np.concatenate([opening, new], axis=1)


# ----------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------

# One sampler (and its compiled functions) per model, dropped with the model.
_SAMPLERS = weakref.WeakKeyDictionary()


def sampler_for(model):
    """The `Sampler` of a Keras `BiaxialModel`, built once and cached."""
    sampler = _SAMPLERS.get(model)
    if sampler is None:
        sampler = _SAMPLERS[model] = Sampler(model)
    return sampler


def check_length(num_samples, steps, seed):
    """Raises `UserError` unless the counts are positive whole numbers and the seed fits."""
    for name, value in (("num_samples", num_samples), ("steps", steps)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise UserError(f"{name} must be a whole number, got {value!r}")
        if value <= 0:
            raise UserError(f"{name} must be positive, got {value}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise UserError(f"seed must be a whole number, got {seed!r}")
    if not -2**63 <= int(seed) < 2**63:
        raise UserError(f"seed must fit in 64 bits, got {seed}")


def checked_primer(config, primer, primer_beat=None, num_notes=None):
    """`(primer roll (P, N, 2) uint8, primer beat (P,) int32, time signature)`.

    `primer` may be None, a MIDI path (read by `primer.read_primer`, whose
    time signature is returned), a `primer.Primer`, a roll, or a `(roll,
    beat)` pair; a roll without beats gets the 4/4 bar positions from 0. The
    time signature is None unless the primer brings one.

    Raises:
        UserError: for a primer that cannot be used.
    """
    from biax_keras.music import primer as primer_lib

    time_signature = None
    if isinstance(primer, (str, os.PathLike)):
        primer = primer_lib.read_primer(os.fspath(primer), config, num_notes)
    if isinstance(primer, primer_lib.Primer):
        primer, primer_beat, time_signature = primer.roll, primer.beat, primer.time_signature
    elif isinstance(primer, tuple) and len(primer) == 2 and primer_beat is None:
        primer, primer_beat = primer
    if primer is None:
        notes = int(num_notes or config.num_notes)
        return np.zeros((0, notes, 2), np.uint8), np.zeros((0,), np.int32), None
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
    return primer.astype(np.uint8), primer_beat, time_signature


def _controls(controls, kwargs, config, weights):
    """The controls to sample with: given whole, or the model's own (in the style of
    `weights`) with `kwargs` on top."""
    if controls is None:
        return config.sampling_controls(weights, **kwargs)
    if kwargs:
        raise TypeError(f"give either controls or {', '.join(kwargs)}, not both")
    if not isinstance(controls, SamplingControls):
        raise TypeError(f"controls must be a SamplingControls, got {type(controls).__name__}")
    return controls


def generate_batch(model, num_samples, steps, seed=0, controls=None, primer=None,
                   num_notes=None, primer_beat=None, time_signature=None, style=None,
                   **control_values):
    """Compose `num_samples` pieces in parallel.

    Args:
        model: a `BiaxialModel`, or what `biax_keras.load_model` returns
            (which may be an exported SavedModel).
        num_samples: K, pieces sampled together.
        steps: new steps to compose *after* the primer (the primer does not
            count).
        seed: int; the same seed gives the same pieces, and sample k does not
            depend on how many samples are drawn with it.
        controls: a `SamplingControls`, used as it is; or None for the
            model's own controls (`BiaxialConfig.sampling`, the neutral ones
            where it has none) with the keyword arguments on top.
        primer: None, a MIDI path, a `primer.Primer`, a roll `(P, N, 2)` or a
            `(roll, beat)` pair. Its steps are fed first and kept as the
            opening of every piece. Notes of a MIDI primer outside the model's
            range are dropped with a warning.
        num_notes: notes of the roll (default: the model's `num_notes`, or the
            primer's).
        primer_beat: bar positions of a roll primer (default: 4/4 from 0).
        time_signature: the bar that the new steps' positions follow, from
            the primer's last position (default: a MIDI primer's meter, else
            4/4).
        style: for a style model (`config.styles`), the style to compose
            in: a name, `"NAME=WEIGHT,..."` or `{name: weight}` for a blend
            (see `styles.parse`); None: its first style. A model without
            styles takes none.
        **control_values: fields of `SamplingControls` (`temperature`,
            `conservativity`, `adaptive`, ...) that change the model's own.

    Returns:
        np.uint8 `(K, P + steps, N, 2)`: play and articulate; articulate is 1
        only where play is.

    Raises:
        UserError: for a control out of range, a style the model does not
            know, or a primer that cannot be used.
    """
    from biax_keras.generation.styles import style_weights

    config = model.config
    weights = style_weights(config, style)
    controls = _controls(controls, control_values, config, weights)
    check_length(num_samples, steps, seed)
    primer, primer_beat, primer_meter = checked_primer(config, primer, primer_beat, num_notes)
    time_signature = tuple(time_signature or primer_meter or DEFAULT_TIME_SIGNATURE)
    if hasattr(model, "generate_batch"):  # an exported SavedModel
        return model.generate_batch(int(num_samples), int(steps), int(seed), controls, primer,
                                    primer_beat, time_signature, style=weights)
    return sampler_for(model).sample(int(num_samples), int(steps), int(seed), controls,
                                     primer, primer_beat, time_signature, style=weights)


def generate(model, steps, seed=0, controls=None, primer=None, num_notes=None,
             primer_beat=None, time_signature=None, style=None, **control_values):
    """Compose one piece: `generate_batch` with one sample.

    Args:
        See `generate_batch`; `steps` are new steps after the primer.

    Returns:
        np.uint8 `(P + steps, N, 2)`.

    Raises:
        UserError: for a control out of range or a primer that cannot be used.
    """
    return generate_batch(model, 1, steps, seed=seed, controls=controls, primer=primer,
                          num_notes=num_notes, primer_beat=primer_beat,
                          time_signature=time_signature, style=style, **control_values)[0]


def score(model, roll, beat, target, style=None):
    """Teacher-forced probabilities by stepping (the sampler's machinery).

    Args:
        model: a `BiaxialModel`.
        roll, beat, target: the inputs of `model(inputs)`.
        style: `(B, S)`, the `style` input of a style model (None otherwise).

    Returns:
        np.float32 `(B, T, N, 2)`, equal to `model(inputs, training=False)`.
    """
    return sampler_for(model).score(roll, beat, target, style)
