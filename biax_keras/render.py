"""MIDI to sound and pictures: `biax render` and `biax generate --wav`.

    biax render out/demo.mid                      # out/demo.wav
    biax render out/quality --to png --out-dir pictures

WAV. With FluidSynth and pyfluidsynth installed (`pip install
'biax_keras[audio]'` and the FluidSynth library), files are played through a
General MIDI soundfont: `--soundfont FILE.sf2`, `$BIAX_SOUNDFONT`, or the one
bundled with pretty_midi. Without them, `biax render` falls back to
pretty_midi's sine-wave synthesizer and says so (`--synth sine` asks for it,
`--synth fluidsynth` refuses to fall back). Audio is 16-bit mono at 44.1 kHz.

PNG. A piano roll of the file at sixteenth-note resolution, time left to
right and pitch bottom to top, cropped to the pitches the piece uses (two
semitones of margin): held notes gray, each note's first step white.

Every file is first read through `representation.midi_to_roll`, with its
bounds on length and memory, so a corrupt or absurd file is skipped with its
reason and the batch goes on. Outputs are written to a temporary file and
renamed.
"""

import logging
import os

import numpy as np

from biax_keras.errors import UserError
from biax_keras.files import write_atomic

log = logging.getLogger(__name__)

WAV_SAMPLE_RATE = 44100
SOUNDFONT_ENV = "BIAX_SOUNDFONT"
_AUDIO_HELP = ("install it with `pip install 'biax_keras[audio]'` (and the FluidSynth library, "
               "e.g. `apt-get install fluidsynth`); pass a soundfont with --soundfont FILE.sf2 "
               f"or ${SOUNDFONT_ENV} (default: the one bundled with pretty_midi)")

FORMATS = ("wav", "png")
SYNTHS = ("auto", "fluidsynth", "sine")
PNG_STEPS_PER_QUARTER = 4
PNG_SCALE = 3  # pixels per step and per semitone
PNG_MARGIN = 2  # semitones above and below the piece's range
_HELD, _ONSET = 0.55, 1.0  # gray levels of the picture


def fluidsynth_available():
    """Whether pyfluidsynth and the FluidSynth library can be loaded."""
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError):  # OSError: the module is there, the C library is not
        return False
    return True


def check_audio(soundfont=None, flag="--wav"):
    """Checks that FluidSynth rendering can work, before anything is done.

    Args:
        soundfont: a .sf2 file, or None for `$BIAX_SOUNDFONT` or pretty_midi's own.
        flag: the option that asked for FluidSynth, for the error message.

    Returns:
        The soundfont path to use, or None for pretty_midi's bundled one.

    Raises:
        UserError: pretty_midi, pyfluidsynth or the soundfont is missing.
    """
    try:
        import pretty_midi  # noqa: F401
    except ImportError:
        raise UserError(f"{flag} needs pretty_midi: {_AUDIO_HELP}") from None
    if not fluidsynth_available():
        raise UserError(f"{flag} needs FluidSynth: {_AUDIO_HELP}")
    soundfont = soundfont or os.environ.get(SOUNDFONT_ENV) or None
    if soundfont is not None and not os.path.isfile(soundfont):
        raise UserError(f"soundfont {soundfont} does not exist; {_AUDIO_HELP}")
    return soundfont


def render_wav(midi_path, wav_path, soundfont=None, sample_rate=WAV_SAMPLE_RATE,
               synth="fluidsynth"):
    """Render a MIDI file to 16-bit mono WAV.

    Args:
        midi_path: the MIDI file (already known to be readable).
        wav_path: the WAV file to write (temporary file, then rename).
        soundfont: for FluidSynth; None for pretty_midi's bundled one.
        sample_rate: samples per second.
        synth: "fluidsynth" or "sine" (pretty_midi's own synthesizer).
    """
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(os.fspath(midi_path))
    if synth == "fluidsynth":
        audio = midi.fluidsynth(fs=sample_rate, sf2_path=soundfont)
    else:
        audio = midi.synthesize(fs=sample_rate)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 1.0:
        audio = audio / peak
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")

    def write(tmp):
        import wave

        with wave.open(tmp, "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(sample_rate)
            f.writeframes(pcm.tobytes())

    write_atomic(wav_path, write)


def roll_image(*panels, scale=PNG_SCALE):
    """Piano-roll panels side by side as one grayscale image.

    Args:
        *panels: arrays `(steps, notes)` with values in [0, 1] (probabilities
            or 0/1 rolls), all the same shape.
        scale: pixels per step and per note.

    Returns:
        float32 `(notes * scale, panels * steps * scale + gaps, 1)`: time runs
        left to right, pitch bottom to top, panels are split by a gray line.
    """
    columns = []
    for index, panel in enumerate(panels):
        picture = np.asarray(panel, np.float32).T[::-1]  # (notes, steps), high pitch on top
        picture = np.repeat(np.repeat(picture, scale, axis=0), scale, axis=1)
        if index:
            columns.append(np.full((picture.shape[0], scale), 0.5, np.float32))
        columns.append(picture)
    return np.concatenate(columns, axis=1)[..., None]


def roll_picture(roll, scale=PNG_SCALE, margin=PNG_MARGIN):
    """A state roll of all 128 pitches as a grayscale piano-roll picture.

    Args:
        roll: uint8 `(steps, 128, 2)` (play, articulate).
        scale: pixels per step and per semitone.
        margin: semitones kept above and below the pitches played.

    Returns:
        float32 `(pitches * scale, steps * scale)` in [0, 1], high pitches in
        the top rows: 0 silent, `_HELD` a held note, `_ONSET` its first step.
    """
    played = np.flatnonzero(roll[..., 0].any(axis=0))
    low = max(int(played.min()) - margin, 0) if played.size else 0
    high = min(int(played.max()) + margin, roll.shape[1] - 1) if played.size else 0
    window = roll[:, low:high + 1].astype(np.float32)
    levels = np.where(window[..., 1] > 0, _ONSET, _HELD * window[..., 0])
    return roll_image(levels, scale=scale)[..., 0]


def render_png(midi_path, png_path, roll=None):
    """Write the piano roll of a MIDI file as a PNG (temporary file, then rename)."""
    from matplotlib import image

    if roll is None:
        roll = _read_roll(midi_path)
    picture = roll_picture(roll)
    write_atomic(png_path, lambda tmp: image.imsave(tmp, picture, cmap="gray", vmin=0.0,
                                                     vmax=1.0, format="png"))


def render(paths, to=("wav",), out_dir=None, synth="auto", soundfont=None,
           sample_rate=WAV_SAMPLE_RATE):
    """Render MIDI files to WAV and/or PNG: `biax render`.

    Args:
        paths: MIDI files and folders (searched recursively for .mid/.midi/.kar).
        to: formats to write, from `FORMATS`.
        out_dir: where to write; None writes next to each MIDI file. Files
            found in a folder keep their path relative to that folder.
        synth: "auto" (FluidSynth where installed, else sine waves),
            "fluidsynth" or "sine".
        soundfont: FluidSynth's soundfont (default `$BIAX_SOUNDFONT`, else
            pretty_midi's bundled one).
        sample_rate: of the WAV files.

    Returns:
        dict: "written" (`[{"midi", "wav"?, "png"?}]`), "skipped"
        (`[{"path", "reason"}]`), "synth" (the synthesizer used for WAV, or
        None).

    Raises:
        UserError: a path that does not exist, no MIDI file found, an unknown
            format or synth, an --out-dir that is a file, FluidSynth asked
            for and missing, or no file
            that could be rendered.
    """
    from biax_keras import representation
    from biax_keras.musicstats import midi_files

    formats = tuple(dict.fromkeys(to))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UserError(f"--to must be one of {', '.join(FORMATS)}, got {', '.join(unknown) or 'none'}")
    if synth not in SYNTHS:
        raise UserError(f"--synth must be one of {', '.join(SYNTHS)}, got {synth}")
    if out_dir is not None and os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UserError(f"--out-dir {out_dir} is a file, not a folder; give a folder to write into")
    used_synth = None
    if "wav" in formats:
        used_synth = _choose_synth(synth)
        if used_synth == "fluidsynth":
            soundfont = check_audio(soundfont, flag="FluidSynth rendering")

    jobs = []  # (midi path, output stem)
    for path in paths:
        path = os.fspath(path)
        if not os.path.exists(path):
            raise UserError(f"{path} does not exist; give MIDI files or folders of them")
        found = midi_files(path)
        if not found:
            raise UserError(f"no MIDI files (.mid, .midi, .kar) in {path}")
        for midi in found:
            if out_dir is None:
                stem = os.path.splitext(midi)[0]
            else:
                relative = os.path.relpath(midi, path) if os.path.isdir(path) else os.path.basename(midi)
                stem = os.path.join(os.fspath(out_dir), os.path.splitext(relative)[0])
            jobs.append((midi, stem))

    written, skipped = [], []
    for midi, stem in jobs:
        try:
            roll = _read_roll(midi)
        except (representation.RepresentationError, OSError) as e:
            skipped.append({"path": midi, "reason": str(e) or type(e).__name__})
            continue
        os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
        entry = {"midi": midi}
        if "wav" in formats:
            entry["wav"] = stem + ".wav"
            render_wav(midi, entry["wav"], soundfont, sample_rate, synth=used_synth)
        if "png" in formats:
            entry["png"] = stem + ".png"
            render_png(midi, entry["png"], roll=roll)
        written.append(entry)
    if not written:
        reasons = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:3])
        raise UserError(f"none of the {len(skipped)} MIDI file(s) could be rendered ({reasons})")
    return {"written": written, "skipped": skipped, "synth": used_synth}


def _choose_synth(synth):
    if synth == "auto":
        if fluidsynth_available():
            return "fluidsynth"
        log.warning("FluidSynth is not installed: rendering with sine waves; for instrument "
                    "sounds %s", _AUDIO_HELP)
        return "sine"
    return synth


def _read_roll(midi_path):
    """All 128 pitches at sixteenth notes, through the bounded reader."""
    from biax_keras import representation

    roll, _ = representation.midi_to_roll(midi_path, steps_per_quarter=PNG_STEPS_PER_QUARTER,
                                          lowest_pitch=0, num_notes=128)
    return roll
