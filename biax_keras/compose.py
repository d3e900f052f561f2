"""`biax generate`: load a model, compose, write MIDI (and WAV) files."""

import logging
import math
import os

import numpy as np

from biax_keras import render, representation
from biax_keras.errors import UserError
from biax_keras.sampling import (
    DEFAULT_BPM,
    DEFAULT_TIME_SIGNATURE,
    SECONDS_PER_MINUTE,
    SamplingControls,
    check_length,
    generate_batch,
    steps_for_seconds,
)

log = logging.getLogger(__name__)

# `biax generate` composes a minute of music unless told otherwise.
DEFAULT_SECONDS = 60.0


def output_paths(out, num_samples):
    """The MIDI files `compose` writes: `out` itself, or `NAME-1.mid` ... `NAME-K.mid`.

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


def compose(model_path, out, steps=None, seconds=None, bpm=None, seed=0, controls=None,
            primer_path=None, primer_steps=None, primer_seconds=None, only_new=False,
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
        seconds: length of the new music at the tempo (used when `steps` is None).
        bpm: tempo in quarter notes per minute, written to the MIDI; None
            keeps a primer's own tempo (120 without a primer).
        seed: see `sampling.generate_batch`.
        controls: a `sampling.SamplingControls` (None: the defaults).
        primer_path: a MIDI file to continue, or None. Its tempo and time
            signature are kept, and the new steps continue its meter.
        primer_steps, primer_seconds: take only the primer's opening (at
            most one of them).
        only_new: write only the new steps, not the primer before them.
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
    from biax_keras.primer import read_primer

    controls = controls or SamplingControls()
    paths = output_paths(out, num_samples)
    folder = os.path.dirname(os.path.abspath(paths[0]))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f"cannot write {paths[0]}: {folder} is not a folder")
    synth = None
    if wav:
        soundfont = render.check_audio(soundfont)
        synth = render.choose_synth("auto")  # says so when only sine waves are left
    if bpm is not None and not (math.isfinite(bpm) and bpm > 0):
        raise UserError(f"the tempo (bpm) must be positive, got {bpm}")
    if primer_path is None and (primer_steps is not None or primer_seconds is not None
                                or only_new):
        raise UserError("--primer-steps, --primer-seconds and --only-new go with --primer")
    model = biax_keras.load_model(model_path)
    config = model.config

    primer, time_signature, notes_dropped = None, DEFAULT_TIME_SIGNATURE, 0
    if primer_path is not None:
        primer = read_primer(primer_path, config, steps=primer_steps, seconds=primer_seconds)
        notes_dropped = primer.notes_dropped
        time_signature = primer.time_signature
        if bpm is None:
            bpm = primer.qpm
    bpm = DEFAULT_BPM if bpm is None else bpm
    if steps is None:
        steps = steps_for_seconds(DEFAULT_SECONDS if seconds is None else seconds, bpm,
                                  config.steps_per_quarter)
    check_length(num_samples, steps, seed)

    started = time.perf_counter()
    rolls = generate_batch(model, num_samples, steps, seed=seed, controls=controls,
                           primer=primer, time_signature=time_signature)
    generate_seconds = time.perf_counter() - started

    primer_length = 0 if primer is None else len(primer.roll)
    written_steps = steps if only_new else primer_length + steps
    os.makedirs(folder, exist_ok=True)
    pieces = []
    for roll, path in zip(rolls, paths):
        roll = roll[len(roll) - written_steps:]
        written = representation.roll_to_midi(roll, path, config.steps_per_quarter,
                                              config.lowest_pitch, qpm=bpm,
                                              time_signature=time_signature)
        # The notes of the file: a play-only model's rolls carry no
        # articulation, so counting articulations would say 0.
        pieces.append({"midi": path,
                       "notes": len(written.notes),
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

    seconds_per_step = SECONDS_PER_MINUTE / bpm / config.steps_per_quarter
    return {
        "pieces": pieces,
        "steps": int(steps),
        "primer_steps": primer_length,
        "only_new": bool(only_new),
        "seconds": written_steps * seconds_per_step,
        "bpm": bpm,
        "time_signature": list(time_signature),
        "seed": int(seed),
        **controls.to_dict(),
        "num_samples": num_samples,
        "primer": primer_path,
        "primer_notes_dropped": notes_dropped,
        "synth": synth,
        "generate_seconds": round(generate_seconds, 3),
    }
