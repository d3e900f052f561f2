"""What TensorBoard shows beside the scalars: the model's output on a fixed
validation window, a composed piece as a piano roll and as sound, and the
HParams session of the run.
"""

import logging
from pathlib import Path

log = logging.getLogger(__name__)


# TensorBoard: how much of the validation window is drawn (4 bars of 4/4 in
# sixteenths), and the tags of the pictures and the sound.
IMAGE_STEPS = 64
OUTPUT_IMAGE_TAG = "valid/true vs model"
SAMPLE_IMAGE_TAG = "sample/roll"
SAMPLE_AUDIO_TAG = "sample/audio"


def _find_generate():
    """The public `biax_keras.generate` function."""
    import biax_keras

    return biax_keras.generate


def session_name(run_dir):
    """The TensorBoard run (and hparams session) of a run folder: its own name."""
    return Path(run_dir).resolve().name or "run"


def roll_summaries(log_dir, window, model_config, train_config, hparams=None):
    """A Keras callback that shows piano rolls, samples and hparams in TensorBoard.

    Every `train_config.image_every` epochs it draws, on a fixed validation
    window (its first `IMAGE_STEPS` steps), the true roll above the model's
    P(play) (and P(articulate)); every `train_config.sample_every` epochs it
    composes a piece of `sample_steps` steps with `biax_keras.generate` and
    adds its piano roll and its audio (a General MIDI piano, see
    `audio.synthesize`). Pictures come from `pictures.roll_image`. Steps are
    epochs counted from 0, as Keras's TensorBoard counts.

    Args:
        log_dir: this run's TensorBoard folder (beside Keras's `train/` and
            `validation/`): images and audio go to `log_dir/samples`, the
            hparams session to `log_dir` itself, so that the HParams dashboard
            finds the `validation/` and `train/` metrics under it.
        window: `(inputs, target)` of one validation window (batch 1) in numpy,
            or None for no output images.
        model_config: the model's `BiaxialConfig`.
        train_config: the `TrainConfig`.
        hparams: dict of hyperparameters to record at the start (None: none).

    Returns:
        A `keras.callbacks.Callback`.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from biax_keras.music import audio, pictures, representation

    lowest, per_quarter = model_config.lowest_pitch, model_config.steps_per_quarter

    class RollSummaries(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "samples"))
            self.generate = _find_generate() if train_config.sample_every else None
            self.sample_failed = False

        def on_train_begin(self, logs=None):
            if hparams:
                _write_hparams(log_dir, hparams)

        def on_epoch_end(self, epoch, logs=None):
            number = epoch + 1
            if window is not None and train_config.image_every and number % train_config.image_every == 0:
                self._write_output(epoch)
            if self.generate and number % train_config.sample_every == 0:
                self._write_sample(epoch)
            self.writer.flush()

        def _write_output(self, epoch):
            inputs, target = window
            probabilities = np.asarray(self.model(inputs, training=False), np.float32)[0, :IMAGE_STEPS]
            truth = np.asarray(target, np.float32)[0, :IMAGE_STEPS]
            beat = np.asarray(inputs["beat"])[0, :IMAGE_STEPS]
            panels = [truth, probabilities[..., 0]]
            titles = ["true (validation window)", f"model P(play), epoch {epoch + 1}"]
            if not model_config.play_only:
                panels.append(probabilities[..., 1] * (truth[..., 0] > 0))
                titles.append("model P(articulate) where the true note plays")
            # The pitches of the true notes (widened to whole octaves) are
            # shown: an untrained model's haze would stretch the picture to
            # every note.
            picture = pictures.roll_image(*panels, titles=titles, lowest_pitch=lowest,
                                        beats=[beat] * len(panels), span_of=[0])
            with self.writer.as_default():
                tf.summary.image(OUTPUT_IMAGE_TAG, picture[None], step=epoch,
                                 description="The first bars of a fixed validation window: the "
                                 "true roll (struck dark, held light) above the model's "
                                 "probabilities (darker is likelier). Pitch up, time in bars.")

        def _write_sample(self, epoch):
            try:
                roll = self.generate(self.model, steps=train_config.sample_steps,
                                     seed=train_config.seed)
            except Exception as e:  # a sampler bug must not end a long training run
                if not self.sample_failed:
                    log.warning("sampling for TensorBoard failed (%s: %s); training goes on",
                                type(e).__name__, e)
                self.sample_failed = True
                return
            roll = np.asarray(roll)
            beat = representation.bar_positions(len(roll), per_quarter)
            picture = pictures.roll_image(
                roll, titles=[f"composed after epoch {epoch + 1} (seed {train_config.seed})"],
                lowest_pitch=lowest, beats=[beat])
            try:
                sound = audio.roll_audio(roll, per_quarter, lowest)
            except Exception as e:  # no sound must not end a training run either
                log.warning("audio of the TensorBoard sample failed (%s: %s)", type(e).__name__, e)
                sound = None
            with self.writer.as_default():
                tf.summary.image(SAMPLE_IMAGE_TAG, picture[None], step=epoch,
                                 description=f"A piece composed with seed {train_config.seed}; "
                                 "struck dark, held light.")
                if sound is not None:
                    samples, rate, synth = sound
                    mono = samples.mean(axis=1, keepdims=True)
                    tf.summary.audio(SAMPLE_AUDIO_TAG, mono[None], rate, step=epoch,
                                     encoding="wav",
                                     description=f"The composed piece ({_SYNTH_NAMES[synth]}).")

    return RollSummaries()


_SYNTH_NAMES = {"soundfont": "General MIDI piano", "fluidsynth": "FluidSynth",
                "sine": "sine waves: no soundfont synthesizer installed"}


def _write_hparams(log_dir, values):
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    metrics = [hp.Metric("epoch_frame_nll", group="validation", display_name="valid frame NLL"),
               hp.Metric("epoch_frame_nll", group="train", display_name="train frame NLL")]
    with tf.summary.create_file_writer(str(log_dir)).as_default():
        hp.hparams_config(hparams=[hp.HParam(name) for name in values], metrics=metrics)
        hp.hparams(values, trial_id=Path(log_dir).name)


def _first_window(dataset):
    """`(inputs, target)` of the first window of a dataset, batch 1, in numpy."""
    for inputs, target, *_ in dataset.take(1).as_numpy_iterator():  # a weight may follow
        return {k: v[:1] for k, v in inputs.items()}, target[:1]
    return None
