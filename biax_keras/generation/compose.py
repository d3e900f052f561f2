"""Composing: the one flow that `biax generate` and `biax studio` share.

    primer = read_primer("theme.mid", model.config, seconds=8)
    piece = compose(model, seconds=30, seed=1, primer=primer)
    piece.write_midi(0, "out/theme-continued.mid")   # at the primer's tempo, in its meter

`compose` works out the length (steps from seconds at the tempo), the tempo
(`--bpm`, else the primer's own, else 120) and the meter (the primer's, else
4/4), samples the rolls and the bar position of every step. A `Composition`
knows how long it is and writes itself as MIDI, so the command line and the
studio cannot disagree about a piece's tempo, meter or length.

`plan` and `write_files` are `biax generate`: `plan` checks everything a user
can get wrong (the model file, the outputs, the primer and its flags) without
TensorFlow, so a mistake costs a fraction of a second; `write_files` composes
and writes the files, the MIDI first, each under a temporary name and renamed.
"""

import logging
import math
import os
import time
from typing import NamedTuple, Optional, Tuple

import numpy as np

from biax_keras.errors import Interrupted, UserError
from biax_keras.generation.sampling import (
    DEFAULT_BPM,
    DEFAULT_TIME_SIGNATURE,
    SECONDS_PER_MINUTE,
    SamplingControls,
    check_length,
    generate_batch,
    steps_for_seconds,
)
from biax_keras.music import audio, representation
from biax_keras.music.primer import Primer, read_primer

log = logging.getLogger(__name__)

# `biax generate` composes a minute of music unless told otherwise.
DEFAULT_SECONDS = 60.0


class Composition(NamedTuple):
    """Pieces composed together, with what it takes to write and play them.

    Attributes:
        rolls: np.uint8 `(K, P + steps, N, 2)`, each opening with the primer.
        beat: np.int32 `(P + steps,)`: every step's position in its bar.
        primer_steps: P, the primer's steps at the start of every roll.
        bpm: tempo in quarter notes per minute.
        time_signature: `(numerator, denominator)` of the new steps.
        steps_per_quarter, lowest_pitch: the model's grid and range.
    """

    rolls: np.ndarray
    beat: np.ndarray
    primer_steps: int
    bpm: float
    time_signature: Tuple[int, int]
    steps_per_quarter: int
    lowest_pitch: int

    @property
    def seconds_per_step(self):
        return SECONDS_PER_MINUTE / self.bpm / self.steps_per_quarter

    def first_step(self, only_new=False):
        """The first step written: 0, or the primer's length with `only_new`."""
        return self.primer_steps if only_new else 0

    def seconds(self, only_new=False):
        """Length in seconds of what `write_midi` writes."""
        return (self.rolls.shape[1] - self.first_step(only_new)) * self.seconds_per_step

    def write_midi(self, index, path, only_new=False):
        """Write piece `index` as MIDI at the piece's tempo and in its meter.

        With `only_new`, the primer is left out; where the new music starts
        inside a bar, the file opens with a pickup bar so that its bar lines
        stay where the model composed them.

        Returns:
            The `note_seq.NoteSequence` written.
        """
        first = self.first_step(only_new)
        per_bar = representation.bar_steps(self.time_signature, self.steps_per_quarter)
        position = int(self.beat[first]) if len(self.beat) > first else 0
        pickup = (per_bar - position) % per_bar
        return representation.roll_to_midi(
            self.rolls[index, first:], path, self.steps_per_quarter, self.lowest_pitch,
            qpm=self.bpm, time_signature=self.time_signature, pickup_steps=pickup)

    def as_primer(self, index=0):
        """Piece `index` as a `Primer`, to continue it at its tempo and in its meter."""
        return Primer(self.rolls[index], self.beat, 0, qpm=self.bpm,
                      time_signature=tuple(self.time_signature),
                      steps_in_file=self.rolls.shape[1])


def tempo_and_meter(primer=None, bpm=None):
    """The tempo and time signature new music is composed and written in.

    Args:
        primer: a `primer.Primer`, or None.
        bpm: a tempo asked for, or None.

    Returns:
        `(bpm, time_signature)`: `bpm` if given, else the primer's tempo,
        else 120; the primer's time signature, else 4/4.

    Raises:
        UserError: a tempo that is not positive.
    """
    if bpm is not None and not (math.isfinite(bpm) and bpm > 0):
        raise UserError(f"the tempo (bpm) must be positive, got {bpm}")
    if bpm is None:
        bpm = DEFAULT_BPM if primer is None else float(primer.qpm)
    meter = DEFAULT_TIME_SIGNATURE if primer is None else tuple(primer.time_signature)
    return float(bpm), meter


def length_in_steps(config, *, steps=None, seconds=None, bpm=None, primer=None):
    """New steps to compose: `steps`, or `seconds` (default 60) at the tempo.

    The tempo is `tempo_and_meter(primer, bpm)`'s, so seconds of music after
    a 60 bpm primer are half the steps they are at 120.
    """
    if steps is not None:
        return steps
    bpm, _ = tempo_and_meter(primer, bpm)
    return steps_for_seconds(DEFAULT_SECONDS if seconds is None else seconds, bpm,
                             config.steps_per_quarter)


def compose(model, *, steps=None, seconds=None, bpm=None, seed=0, controls=None, primer=None,
            num_samples=1, style=None):
    """Compose `num_samples` pieces with a loaded model.

    Args:
        model: what `biax_keras.load_model` returns.
        steps: new steps to compose, or None to use `seconds`.
        seconds: length of the new music at the tempo (`DEFAULT_SECONDS` when
            neither is given).
        bpm: tempo in quarter notes per minute; None keeps the primer's own
            (120 without a primer).
        seed: the same seed gives the same pieces.
        controls: a `SamplingControls` (None: the model's own, see
            `BiaxialConfig.sampling`).
        primer: a `primer.Primer`, or None. Its steps open every piece and
            the new steps continue its meter.
        num_samples: pieces composed in parallel.
        style: a style model's style or blend (see `styles.parse`; None: its
            first style).

    Returns:
        A `Composition`.

    Raises:
        UserError: a length, tempo, seed or control that cannot be used.
    """
    from biax_keras.generation.styles import style_weights

    config = model.config
    controls = controls or config.sampling_controls(
        style_weights(config, style))
    bpm, time_signature = tempo_and_meter(primer, bpm)
    steps = length_in_steps(config, steps=steps, seconds=seconds, bpm=bpm, primer=primer)
    check_length(num_samples, steps, seed)
    rolls = generate_batch(model, num_samples, steps, seed=seed, controls=controls,
                           primer=primer, time_signature=time_signature, style=style)
    primer_steps = 0 if primer is None else len(primer.roll)
    offset = 0 if primer is None else int(primer.beat[-1]) + 1
    new_beat = representation.bar_positions(steps, config.steps_per_quarter, time_signature,
                                            offset=offset)
    beat = new_beat if primer is None else np.concatenate(
        [np.asarray(primer.beat, np.int32), new_beat])
    return Composition(np.asarray(rolls), beat, primer_steps, float(bpm), time_signature,
                       config.steps_per_quarter, config.lowest_pitch)


# ----------------------------------------------------------------------------
# biax generate
# ----------------------------------------------------------------------------


def output_paths(out, num_samples):
    """The MIDI files `biax generate` writes: `out` itself, or `NAME-1.mid` ... `NAME-K.mid`.

    Raises:
        UserError: `out` does not end in a MIDI suffix.
    """
    out = os.fspath(out)
    stem, suffix = os.path.splitext(out)
    if suffix.lower() not in representation.MIDI_SUFFIXES:
        raise UserError(f"--out must name a MIDI file ({', '.join(representation.MIDI_SUFFIXES)}), "
                        f"got {out}")
    if num_samples == 1:
        return [out]
    return [f"{stem}-{i}{suffix}" for i in range(1, num_samples + 1)]


def wav_path(midi_path):
    """The WAV file written beside a MIDI file."""
    return os.path.splitext(midi_path)[0] + ".wav"


class GenerateJob(NamedTuple):
    """`biax generate`, checked and ready to run (see `plan`)."""

    model_path: str
    paths: list
    steps: Optional[int]
    seconds: Optional[float]
    bpm: Optional[float]
    seed: int
    controls: SamplingControls
    primer: Optional[Primer]
    primer_path: Optional[str]
    only_new: bool
    wav: bool
    soundfont: Optional[str]
    synth: Optional[str]
    style: Optional[str] = None


def plan(model_path, out, *, steps=None, seconds=None, bpm=None, seed=0, controls=None,
         primer_path=None, primer_steps=None, primer_seconds=None, only_new=False,
         num_samples=1, wav=False, soundfont=None, overwrite=False, style=None):
    """Check a `biax generate` request and read its primer, without TensorFlow.

    Args:
        model_path: a `.keras` file, run folder or exported SavedModel.
        out: the .mid file to write (`NAME-1.mid` ... for several samples).
        steps, seconds, bpm, seed, controls, num_samples: see `compose`.
        primer_path: a MIDI file to continue, or None.
        primer_steps, primer_seconds: take only the primer's opening (at
            most one of them).
        only_new: write only the new steps, not the primer before them.
        wav: also render each piece to a .wav beside its .mid.
        soundfont: the .sf2 for `wav`.
        overwrite: replace files that already exist (refused otherwise).
        style: a style model's style or blend, `NAME` or `NAME=W,...`.

    Returns:
        A `GenerateJob` for `write_files`.

    Raises:
        UserError: for anything wrong in the arguments, the model file or the primer.
    """
    import biax_keras

    from biax_keras.generation.styles import style_weights

    config = biax_keras.model_config(model_path)
    kind, _ = biax_keras.model_file(model_path)
    weights = style_weights(config, style)  # a style the model does not know, said before TensorFlow
    paths = output_paths(out, num_samples)
    folder = os.path.dirname(os.path.abspath(paths[0]))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f"cannot write {paths[0]}: {folder} is not a folder")
    outputs = paths + ([wav_path(p) for p in paths] if wav else [])
    existing = [p for p in outputs if os.path.lexists(p)]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise UserError(f"{existing[0]}{more} already exists; choose another --out, or add "
                        f"--overwrite to replace it")
    for path in existing:
        if os.path.isdir(path):
            raise UserError(f"cannot write {path}: it is a folder")
    tempo_and_meter(None, bpm)
    if primer_path is None and (primer_steps is not None or primer_seconds is not None
                                or only_new):
        raise UserError("--primer-steps, --primer-seconds and --only-new go with --primer")
    primer = None
    if primer_path is not None:
        primer = read_primer(primer_path, config, steps=primer_steps, seconds=primer_seconds)
        if kind == "saved_model":
            from biax_keras.generation.export import check_time_signature

            check_time_signature(primer.time_signature)
    check_length(num_samples, steps if steps is not None else 1, seed)
    synth = None
    if wav:
        soundfont = audio.check_audio(soundfont)
        synth = audio.choose_synth("auto")  # says so when only sine waves are left
    return GenerateJob(os.fspath(model_path), paths, steps, seconds, bpm, int(seed),
                       controls or config.sampling_controls(weights),
                       primer, primer_path, bool(only_new),
                       bool(wav), soundfont, synth, style)


def write_files(job):
    """Load the model, compose and write the files of a planned `biax generate`.

    Every MIDI file is written before any audio is rendered, so audio cannot
    lose the music: if rendering fails or is interrupted, the error names the
    files already written.

    Returns:
        A JSON-able dict describing what was written.

    Raises:
        UserError: the model cannot be loaded, or the audio cannot be rendered.
        Interrupted: Ctrl-C (or SIGTERM) after some files were written.
    """
    import biax_keras

    model = biax_keras.load_model(job.model_path)
    started = time.perf_counter()
    piece = compose(model, steps=job.steps, seconds=job.seconds, bpm=job.bpm, seed=job.seed,
                    controls=job.controls, primer=job.primer, num_samples=len(job.paths),
                    style=job.style)
    generate_seconds = time.perf_counter() - started

    os.makedirs(os.path.dirname(os.path.abspath(job.paths[0])), exist_ok=True)
    pieces, finished = [], []
    try:
        for index, path in enumerate(job.paths):
            written = piece.write_midi(index, path, only_new=job.only_new)
            finished.append(path)
            first = piece.first_step(job.only_new)
            # The notes of the file: a play-only model's rolls carry no
            # articulation, so counting articulations would say 0.
            pieces.append({"midi": path, "notes": len(written.notes),
                           "silent_steps": int(np.sum(~piece.rolls[index, first:, :, 0].any(-1)))})
        if job.wav:
            for entry in pieces:
                wav_file = wav_path(entry["midi"])
                try:
                    audio.render_wav(entry["midi"], wav_file, job.soundfont, synth=job.synth)
                except Exception as e:  # whatever the synthesizer raises, the MIDI stays
                    reason = " ".join(str(e).split())[:200] or type(e).__name__
                    raise UserError(f"wrote {', '.join(finished)}, but could not render "
                                    f"{wav_file} ({reason}); render it later with "
                                    f"`biax render {entry['midi']}`") from None
                finished.append(wav_file)
                entry["wav"] = wav_file
    except KeyboardInterrupt:
        if not finished:
            raise
        unrendered = [p["midi"] for p in pieces if job.wav and "wav" not in p]
        later = (f"; render the rest later with `biax render {' '.join(unrendered)}`"
                 if len(pieces) == len(job.paths) and unrendered else "")
        raise Interrupted(f"finished {', '.join(finished)}{later}") from None

    return {
        "pieces": pieces,
        "steps": int(piece.rolls.shape[1] - piece.primer_steps),
        "primer_steps": piece.primer_steps,
        "only_new": job.only_new,
        "seconds": piece.seconds(job.only_new),
        "bpm": piece.bpm,
        "time_signature": list(piece.time_signature),
        "seed": job.seed,
        **job.controls.to_dict(),
        **_style_entry(model.config, job.style),
        "num_samples": len(job.paths),
        "primer": job.primer_path,
        "primer_notes_dropped": 0 if job.primer is None else job.primer.notes_dropped,
        "synth": job.synth,
        "generate_seconds": round(generate_seconds, 3),
    }


def _style_entry(config, style):
    """`{"style": {name: weight}}` of a style model's piece; nothing for another model's."""
    from biax_keras.generation.styles import style_weights

    if not config.styles:
        return {}
    weights = style_weights(config, style)
    return {"style": {name: round(float(w), 6) for name, w in zip(config.styles, weights) if w}}
