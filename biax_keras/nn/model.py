"""BiaxialModel: the four layers assembled, with its loss, metrics and config.

    config = BiaxialConfig()                    # the default, full-size model
    model = build_model(config)                 # compiled, ready for model.fit
    probabilities = model(inputs)               # (B, T, N, 2)
    logits, decisions, states = model.step(previous, beat, states, choose, given)

`model.step` is one time step with the note axis walked note by note, each
note's play/articulate decided by `choose` and fed to the note above: the
sampler and the step-by-step scorer are loops over it.

The loss is the frame negative log-likelihood in nats: binary cross-entropy of
play on every note plus, where the target note plays, of articulate, summed
over notes and averaged over steps. So the loss Keras prints *is* the frame
NLL that papers report.
"""

import keras
from keras import ops

from biax_keras.nn.config import BiaxialConfig, checked_fields  # noqa: F401  (their home before config.py)
from biax_keras.nn.note_axis_lstm import NoteAxisLSTM
from biax_keras.nn.note_features import NoteFeatures, note_feature_size
from biax_keras.nn.play_articulate_head import PlayArticulateHead
from biax_keras.nn.time_axis_lstm import TimeAxisLSTM

# The note walk of `BiaxialModel.step` is a loop whose body is unrolled over
# this many notes: fewer loop iterations, a graph that stays small.
NOTES_PER_ITERATION = 2

# Probabilities are clipped this far from 0 and 1 before taking logs, as
# Keras's own binary cross-entropy does; it bounds a note's loss at ~16 nats.
EPSILON = 1e-7


@keras.saving.register_keras_serializable(package="biax_keras")
class BiaxialModel(keras.Model):
    """The biaxial recurrent network.

    Args:
        config: a `BiaxialConfig` or its dict.

    Call arguments:
        inputs: dict with `roll` `(B, T, N, 2)` (the steps before the ones
            predicted), `beat` `(B, T)` (bar positions of the predicted steps)
            and `target` `(B, T, N, 2)` (the predicted steps, for the note
            axis's teacher forcing); for a model with `config.styles`, also
            `style` `(B, S)`, the weights of its styles (one-hot for one
            style, summing to 1 for a blend).
        training: bool, whether dropout is active.

    Returns:
        `(B, T, N, 2)` probabilities of play and articulate for each note of
        each predicted step.
    """

    def __init__(self, config=None, **kwargs):
        super().__init__(**kwargs)
        if config is None:
            config = BiaxialConfig()
        elif isinstance(config, dict):
            config = BiaxialConfig.from_dict(config)
        self.config = config
        self.note_features = NoteFeatures(
            lowest_pitch=config.lowest_pitch, beat_bits=config.beat_bits,
            pitch_position=config.pitch_position, name="note_features"
        )
        self.time_axis = TimeAxisLSTM(config.time_units, config.dropout, name="time_axis")
        self.note_axis = NoteAxisLSTM(config.note_units, config.dropout, name="note_axis")
        self.head = PlayArticulateHead(name="head")
        # Only a model that hides input notes has the seed state to draw with,
        # so that the models and files made before the option are unchanged.
        self.input_seed = (keras.random.SeedGenerator(name="input_seed")
                           if config.input_dropout else None)
        # A style model mixes one learned embedding per style by the style
        # weights it is given (a linear map of the weights, without bias).
        self.style_embedding = (
            keras.layers.Dense(config.style_units, use_bias=False, name="style_embedding")
            if config.styles else None)
        # Weights do not depend on the number of notes or steps, so the model
        # is built here once and for all (which also makes reloading simple).
        features = note_feature_size(config.beat_bits, config.pitch_position)
        if self.style_embedding is not None:
            self.style_embedding.build((None, len(config.styles)))
            features += config.style_units
        self.time_axis.build((None, None, None, features))
        self.note_axis.build((None, None, None, config.time_units[-1]))
        self.head.build((None, config.note_units[-1]))
        self.built = True

    def call(self, inputs, training=None):
        roll = self._seen(inputs["roll"])
        if training and self.input_seed is not None:
            # Each note of each previous step hidden with this probability.
            noise = keras.random.uniform(ops.shape(roll)[:-1] + (1,), seed=self.input_seed)
            roll = roll * ops.cast(noise >= self.config.input_dropout, roll.dtype)
        features = self._with_style(self.note_features(roll, inputs["beat"]), inputs.get("style"))
        x = self.time_axis(features, training=training)
        x = self.note_axis(x, self._seen(inputs["target"]), training=training)
        return self.head(x)

    def _with_style(self, features, style):
        """Note features `(B, T, N, F)` with the style mix `(B, E)` beside each note's.

        A model without styles returns `features` as they are (and ignores
        `style`); a style model needs `style`, the weights `(B, S)` of its
        styles.
        """
        if self.style_embedding is None:
            return features
        if style is None:
            raise ValueError(f"this model composes in a style: give inputs['style'], the "
                             f"weights of its styles {list(self.config.styles)}")
        mix = ops.cast(self.style_embedding(ops.cast(style, self.style_embedding.compute_dtype)),
                       features.dtype)
        shape = ops.shape(features)
        mix = ops.broadcast_to(mix[:, None, None, :],
                               (shape[0], shape[1], shape[2], self.config.style_units))
        return ops.concatenate([features, mix], axis=-1)

    def _seen(self, roll):
        """What the network is shown of a roll `(..., 2)`.

        A play-only network never learns its articulate output, so it is
        never shown articulation either: it sees the same input whether its
        data came from a JSB-format file (no articulation) or from MIDI
        (articulated), in training, scoring and sampling alike.
        """
        if not self.config.play_only:
            return roll
        return roll * ops.cast(ops.convert_to_tensor([1.0, 0.0]), roll.dtype)

    def initial_state(self, rows):
        """Zero time-axis states for `rows = K * N` rows (K pieces of N notes)."""
        return self.time_axis.initial_state(rows)

    def step_time(self, previous, beat, states, style=None):
        """The time axis of one step (a primer's step needs no more).

        Args:
            previous, beat, states, style: as for `step`.

        Returns:
            `(time_outputs (K, N, H), new_states)`.
        """
        features = self._with_style(
            self.note_features(self._seen(previous)[:, None], beat[:, None]), style)[:, 0]
        # Stepping runs in float32 even for a model trained in mixed precision
        # (its variables are float32; only its compute dtype is not).
        features = ops.cast(features, "float32")
        return self.time_axis.step(features, states)

    def step(self, previous, beat, states, choose, given, notes_per_iteration=None, style=None):
        """One time step, the note axis walked from low to high (inference).

        Every note's play and articulate are decided by `choose` and fed to the
        note above, so the same function samples (`choose` draws) and scores
        (`choose` returns the given roll, which makes it `model(inputs)` one
        step at a time). Graph code: call it inside a `tf.function`.

        Args:
            previous: `(K, N, 2)` float, the step before the one predicted.
            beat: `(K,)` int32, bar position of the step predicted.
            states: `initial_state(K * N)` or what the previous `step` returned.
            choose: `choose(logits, given_n) -> decision`, with `logits` and
                the decision `(K, 2)`; the decision (play, articulate) is fed
                to the next note.
            given: `(K, N, D)` per-note data handed to `choose` (uniform
                numbers when sampling, the target step when scoring).
            notes_per_iteration: notes unrolled in each iteration of the walk
                (default `NOTES_PER_ITERATION`; N or more unrolls it all).
            style: `(K, S)` weights of a style model's styles (ignored by a
                model without styles).

        Returns:
            `(logits (K, N, 2), decisions (K, N, 2), new_states)`.
        """
        time_outputs, states = self.step_time(previous, beat, states, style)
        logits, decisions = self._walk_notes(
            time_outputs, given, choose, int(notes_per_iteration or NOTES_PER_ITERATION))
        return logits, decisions, states

    def _walk_notes(self, time_outputs, given, choose, per_iteration):
        """The note axis of one step: `(logits, decisions)`, each `(K, N, 2)`.

        The maths is `keras.ops`; the loop over groups of notes is TensorFlow's
        own `while_loop` over `TensorArray`s, which `keras.ops.while_loop`
        (tensors only, no arrays to write into) cannot express, and which XLA
        compiles into the sampler's one computation per chunk of steps.
        """
        import tensorflow as tf

        projected, below_kernel = self.note_axis.precompute(time_outputs)
        given = ops.transpose(given, (1, 0, 2))  # note-major, as `projected`
        num_notes = time_outputs.shape[1]

        def notes(index, count, below, states):
            """`count` consecutive notes from `index`, unrolled in the graph."""
            all_logits, decisions = [], []
            for j in range(count):
                x, states = self.note_axis.step(projected[index + j], below, states, below_kernel)
                logits = self.head.logits(x)
                below = self._seen(choose(logits, given[index + j]))
                all_logits.append(logits)
                decisions.append(below)
            return ops.stack(all_logits), ops.stack(decisions), below, states

        batch = ops.shape(time_outputs)[0]
        states = self.note_axis.initial_state(batch)
        below = ops.zeros((batch, 2))
        per_iteration = min(per_iteration, num_notes)
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
            logits = ops.reshape(logits_array.stack(), shape)
            decisions = ops.reshape(decision_array.stack(), shape)
        if remainder:
            tail_logits, tail_decisions, _, _ = notes(num_notes - remainder, remainder,
                                                      below, states)
            logits = ops.concatenate([logits, tail_logits], axis=0)
            decisions = ops.concatenate([decisions, tail_decisions], axis=0)
        return ops.transpose(logits, (1, 0, 2)), ops.transpose(decisions, (1, 0, 2))

    def get_config(self):
        return {"config": self.config.to_dict(), "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def frame_losses(target, probabilities, play_only=False):
    """Per-step negative log-likelihoods in nats, summed over notes.

    Args:
        target: `(B, T, N, 2)` true play/articulate.
        probabilities: `(B, T, N, 2)` predicted probabilities.
        play_only: if True, articulate is ignored.

    Returns:
        `(play, articulate)`, each `(B, T)`; articulate counts only notes whose
        target plays, and is zero when `play_only`.
    """
    target = ops.cast(target, probabilities.dtype)
    p = ops.clip(probabilities, EPSILON, 1.0 - EPSILON)
    bce = -(target * ops.log(p) + (1.0 - target) * ops.log(1.0 - p))
    play = ops.sum(bce[..., 0], axis=-1)
    if play_only:
        return play, ops.zeros_like(play)
    articulate = ops.sum(bce[..., 1] * target[..., 0], axis=-1)
    return play, articulate


@keras.saving.register_keras_serializable(package="biax_keras")
class FrameNLL(keras.losses.Loss):
    """Frame negative log-likelihood (nats per step, summed over notes).

    Binary cross-entropy of play on every note, plus of articulate on the
    notes the target plays (an unplayed note has no articulation to predict).

    Args:
        play_only: ignore the articulate channel.
    """

    def __init__(self, play_only=False, name="frame_nll", **kwargs):
        super().__init__(name=name, **kwargs)
        self.play_only = bool(play_only)

    def call(self, y_true, y_pred):
        play, articulate = frame_losses(y_true, y_pred, self.play_only)
        return play + articulate

    def get_config(self):
        config = super().get_config()
        config.update(play_only=self.play_only)
        return config


@keras.saving.register_keras_serializable(package="biax_keras")
class NLLPart(keras.metrics.Mean):
    """Mean over steps of the frame NLL (`frame`) or one of its parts (`play`, `articulate`)."""

    def __init__(self, part="frame", play_only=False, name=None, **kwargs):
        if part not in ("frame", "play", "articulate"):
            raise ValueError(f"part must be 'frame', 'play' or 'articulate', got {part!r}")
        super().__init__(name=name or f"{part}_nll", **kwargs)
        self.part = part
        self.play_only = bool(play_only)

    def update_state(self, y_true, y_pred, sample_weight=None):
        play, articulate = frame_losses(y_true, y_pred, self.play_only)
        value = {"frame": play + articulate, "play": play, "articulate": articulate}[self.part]
        return super().update_state(value, sample_weight)

    def get_config(self):
        config = super().get_config()
        config.update(part=self.part, play_only=self.play_only)
        return config


@keras.saving.register_keras_serializable(package="biax_keras")
class NoteOnRate(keras.metrics.Metric):
    """Precision or recall of note-ons (play and articulate) at threshold 0.5.

    A predicted note-on is a note whose P(play) and P(articulate) both exceed
    0.5. In play-only mode the events are sounding notes (P(play) > 0.5).

    Args:
        kind: `precision` or `recall`.
        play_only: count sounding notes instead of note-ons.
    """

    def __init__(self, kind="precision", play_only=False, name=None, **kwargs):
        if kind not in ("precision", "recall"):
            raise ValueError(f"kind must be 'precision' or 'recall', got {kind!r}")
        event = "play" if play_only else "note_on"
        super().__init__(name=name or f"{event}_{kind}", **kwargs)
        self.kind = kind
        self.play_only = bool(play_only)
        self.hits = self.add_variable((), initializer="zeros", name="hits")
        self.total = self.add_variable((), initializer="zeros", name="total")

    def _events(self, roll, threshold):
        play = roll[..., 0] > threshold
        if self.play_only:
            return play
        return ops.logical_and(play, roll[..., 1] > threshold)

    def update_state(self, y_true, y_pred, sample_weight=None):
        true = self._events(ops.cast(y_true, "float32"), 0.5)
        pred = self._events(ops.cast(y_pred, "float32"), 0.5)
        hits = ops.sum(ops.cast(ops.logical_and(true, pred), "float32"))
        total = ops.sum(ops.cast(pred if self.kind == "precision" else true, "float32"))
        self.hits.assign_add(hits)
        self.total.assign_add(total)

    def result(self):
        return ops.divide_no_nan(self.hits, self.total)

    def reset_state(self):
        self.hits.assign(0.0)
        self.total.assign(0.0)

    def get_config(self):
        config = super().get_config()
        config.update(kind=self.kind, play_only=self.play_only)
        return config


def metrics_for(config):
    """The metrics `build_model` compiles with, for a config."""
    metrics = [NLLPart("frame", config.play_only), NLLPart("play", config.play_only)]
    if not config.play_only:
        metrics.append(NLLPart("articulate"))
    metrics += [
        NoteOnRate("precision", config.play_only),
        NoteOnRate("recall", config.play_only),
    ]
    return metrics


def build_model(config=None, learning_rate=1e-3, clipnorm=1.0, compile=True, weight_decay=0.0,
                ema=None):
    """Builds (and by default compiles) a `BiaxialModel`.

    Args:
        config: a `BiaxialConfig`, its dict, or None for the default.
        learning_rate: Adam's learning rate.
        clipnorm: gradient clipping by global norm (None to turn it off).
        compile: whether to compile with the frame-NLL loss and metrics.
        weight_decay: Adam's decoupled weight decay (0: none).
        ema: momentum of the optimizer's moving average of the weights (None:
            none); see `train.TrainConfig.ema`.

    Returns:
        A built `BiaxialModel`.
    """
    model = BiaxialModel(config)
    if compile:
        compile_model(model, learning_rate=learning_rate, clipnorm=clipnorm,
                      weight_decay=weight_decay, ema=ema)
    return model


def compile_model(model, learning_rate=1e-3, clipnorm=1.0, weight_decay=0.0, ema=None):
    """Compiles `model` with Adam, the frame-NLL loss and the metrics."""
    optimizer = keras.optimizers.Adam(
        learning_rate=learning_rate, global_clipnorm=clipnorm,
        weight_decay=weight_decay or None,
        use_ema=ema is not None, ema_momentum=0.99 if ema is None else ema)
    model.compile(
        optimizer=optimizer,
        loss=FrameNLL(model.config.play_only),
        metrics=metrics_for(model.config),
    )
    return model
