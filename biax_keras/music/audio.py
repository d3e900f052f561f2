"""MIDI to sound: `biax render --to wav`, `biax generate --wav`, TensorBoard, the studio.

Files are played through a General MIDI soundfont by the `midirenderer`
wheel (a synthesizer compiled into the wheel: no system library), with the
soundfont that pretty_midi installs (TimGM6mb.sf2, a piano on program 0)
unless `--soundfont FILE.sf2` or `$BIAX_SOUNDFONT` names another. FluidSynth
is used where asked for (`--synth fluidsynth`, with `pip install
'biax_keras[audio]'` and the FluidSynth library). Sine waves (pretty_midi's
own synthesizer) are the last resort, used only when neither is there or
when asked for (`--synth sine`), and a warning says so. The audio goes on
`RELEASE_SECONDS` after the last event so the last notes ring out, fades to
silence at its very end, is normalized to a peak of -1 dBFS and written as
16-bit WAV (48 kHz stereo from the soundfont synthesizer, 44.1 kHz mono
otherwise), to a temporary file that is then renamed.
"""

import functools
import io
import logging
import os
import wave

import numpy as np

from biax_keras.errors import UserError
from biax_keras.files import write_atomic

log = logging.getLogger(__name__)


WAV_SAMPLE_RATE = 44100
SOUNDFONT_ENV = "BIAX_SOUNDFONT"
BUNDLED_SOUNDFONT = "TimGM6mb.sf2"  # installed by pretty_midi
PEAK = 10 ** (-1 / 20)  # -1 dBFS
# Notes go on sounding after their note-off (a piano's release): the audio
# goes on this long after the file's last event, and its last FADE_SECONDS
# fade to silence.
RELEASE_SECONDS = 1.0
FADE_SECONDS = 0.05
_SOUNDFONT_HELP = "it comes with biax_keras (`pip install midirenderer` if it is missing)"
_AUDIO_HELP = ("install it with `pip install 'biax_keras[audio]'` (and the FluidSynth library, "
               "e.g. `apt-get install fluidsynth`); pass a soundfont with --soundfont FILE.sf2 "
               f"or ${SOUNDFONT_ENV} (default: the one bundled with pretty_midi)")
SYNTHS = ("auto", "soundfont", "fluidsynth", "sine")


def soundfont_synth_available():
    """Whether the `midirenderer` wheel (a soundfont synthesizer) can be loaded."""
    try:
        import midirenderer  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def fluidsynth_available():
    """Whether pyfluidsynth and the FluidSynth library can be loaded."""
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError):  # OSError: the module is there, the C library is not
        return False
    return True


def bundled_soundfont():
    """Path of the General MIDI soundfont that pretty_midi installs, or None."""
    try:
        import pretty_midi
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(pretty_midi.__file__), BUNDLED_SOUNDFONT)
    return path if os.path.isfile(path) else None


def resolve_soundfont(soundfont=None, flag="--soundfont"):
    """The soundfont to play with: `soundfont`, else `$BIAX_SOUNDFONT`, else pretty_midi's.

    Raises:
        UserError: the file does not exist or is not a SoundFont 2 file.
    """
    given = soundfont or os.environ.get(SOUNDFONT_ENV) or None
    if given is None:
        found = bundled_soundfont()
        if found is None:
            raise UserError(f"no soundfont: pretty_midi's {BUNDLED_SOUNDFONT} is missing; "
                            f"install pretty_midi or give {flag} FILE.sf2")
        return found
    given = os.fspath(given)
    if not os.path.isfile(given):
        raise UserError(f"soundfont {given} does not exist; give an .sf2 file with {flag} "
                        f"(or ${SOUNDFONT_ENV})")
    with open(given, "rb") as f:
        header = f.read(12)
    if header[:4] != b"RIFF" or header[8:12] != b"sfbk":
        raise UserError(f"soundfont {given} is not a SoundFont 2 (.sf2) file")
    return given


def check_audio(soundfont=None, flag="--wav", synth="auto"):
    """Checks, before anything is done, that audio can be rendered as asked.

    Args:
        soundfont: a .sf2 file, or None for `$BIAX_SOUNDFONT` or pretty_midi's own.
        flag: the option that asked for audio, for error messages.
        synth: one of `SYNTHS`.

    Returns:
        The soundfont path to use (None where the synthesizer needs none).

    Raises:
        UserError: the soundfont is missing or not one, or the synthesizer
            asked for is not installed.
    """
    chosen = choose_synth(synth, warn=False)
    if chosen == "sine":
        return None
    if chosen == "fluidsynth":
        try:
            import pretty_midi  # noqa: F401
        except ImportError:
            raise UserError(f"{flag} with FluidSynth needs pretty_midi: {_AUDIO_HELP}") from None
    return resolve_soundfont(soundfont)


def choose_synth(synth="auto", warn=True):
    """The synthesizer `synth` stands for here.

    "auto" is the soundfont synthesizer where installed, else FluidSynth,
    else sine waves (with a warning when `warn`).

    Raises:
        UserError: an unknown name, or a synthesizer asked for by name that is
            not installed.
    """
    if synth not in SYNTHS:
        raise UserError(f"--synth must be one of {', '.join(SYNTHS)}, got {synth}")
    if synth == "auto":
        if soundfont_synth_available():
            return "soundfont"
        if fluidsynth_available():
            return "fluidsynth"
        if warn:
            log.warning("warning: no soundfont synthesizer is installed: rendering with SINE "
                        "WAVES, not an instrument; `pip install midirenderer` (or FluidSynth: "
                        "%s) for piano sound", _AUDIO_HELP)
        return "sine"
    if synth == "soundfont" and not soundfont_synth_available():
        raise UserError(f"--synth soundfont needs the midirenderer wheel; {_SOUNDFONT_HELP}")
    if synth == "fluidsynth" and not fluidsynth_available():
        raise UserError(f"--synth fluidsynth needs FluidSynth: {_AUDIO_HELP}")
    return synth


@functools.lru_cache(maxsize=2)
def _soundfont_bytes(path, mtime):
    with open(path, "rb") as f:
        return f.read()


def synthesize(midi, synth="auto", soundfont=None, sample_rate=WAV_SAMPLE_RATE):
    """Play MIDI into samples.

    Args:
        midi: a MIDI file's path or its bytes (already known to be readable).
        synth: one of `SYNTHS`.
        soundfont: .sf2 for the soundfont synthesizer and FluidSynth (None:
            `$BIAX_SOUNDFONT`, else pretty_midi's).
        sample_rate: for FluidSynth and sine waves (the soundfont synthesizer
            plays at its own 48 kHz).

    Returns:
        `(samples, rate, synth)`: float32 `(frames, channels)` with a peak of
        -1 dBFS (zeros for silence), frames per second, and the synthesizer used.

    Raises:
        UserError: see `choose_synth` and `resolve_soundfont`; a soundfont the
            synthesizer cannot read.
    """
    chosen = choose_synth(synth)
    if chosen != "sine":
        soundfont = resolve_soundfont(soundfont)
    data = midi if isinstance(midi, (bytes, bytearray)) else None
    if chosen == "soundfont":
        import midirenderer

        if data is None:
            with open(midi, "rb") as f:
                data = f.read()
        # The synthesizer stops at the file's last event: without a later
        # one, the notes still sounding at the last note-off are cut dead.
        data = with_release(bytes(data))
        try:
            rendered = midirenderer.render_wave_from(
                _soundfont_bytes(soundfont, os.path.getmtime(soundfont)), bytes(data))
        except (RuntimeError, ValueError) as e:
            raise UserError(f"cannot play with soundfont {soundfont}: {e}") from None
        samples, rate = read_wav(io.BytesIO(rendered))
    else:
        import pretty_midi

        source = io.BytesIO(bytes(data)) if data is not None else os.fspath(midi)
        music = pretty_midi.PrettyMIDI(source)
        if chosen == "fluidsynth":
            mono = music.fluidsynth(fs=sample_rate, sf2_path=soundfont)
        else:
            mono = music.synthesize(fs=sample_rate)
        samples, rate = np.asarray(mono, np.float32)[:, None], sample_rate
    samples = _fade_out(samples, rate)
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > 0:
        samples = samples * np.float32(PEAK / peak)
    return samples.astype(np.float32), rate, chosen


def with_release(data, seconds=RELEASE_SECONDS):
    """MIDI bytes with a marker `seconds` after the last event of any track.

    A synthesizer plays to the file's last event; the marker lets the notes
    that end there ring out as an instrument's notes do after their note-off.
    """
    import mido

    midi = mido.MidiFile(file=io.BytesIO(data))
    last_tick, tempo_changes = 0, []
    for track in midi.tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "set_tempo":
                tempo_changes.append((tick, message.tempo))
        last_tick = max(last_tick, tick)
    tempo = max(tempo_changes)[1] if tempo_changes else 500_000  # MIDI's default: 120 qpm
    tail = int(round(seconds * 1e6 / tempo * midi.ticks_per_beat))
    first = midi.tracks[0]
    first_end = sum(message.time for message in first)
    kept = [m for m in first if m.type != "end_of_track"]
    rest = first_end - sum(m.time for m in kept)  # delta of the end_of_track removed
    first[:] = kept + [mido.MetaMessage("marker", text="release", time=last_tick - first_end + rest
                                        + tail),
                       mido.MetaMessage("end_of_track", time=0)]
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def _fade_out(samples, rate, seconds=FADE_SECONDS):
    """The last `seconds` of `samples` faded to silence, so the audio never ends in a click."""
    frames = min(len(samples), int(round(seconds * rate)))
    if frames:
        samples = np.array(samples, np.float32)
        samples[-frames:] *= np.linspace(1.0, 0.0, frames, dtype=np.float32)[:, None]
    return samples


def read_wav(source):
    """16-bit PCM WAV (a path or file object) as float32 `(frames, channels)` and its rate."""
    with wave.open(source, "rb") as f:
        if f.getsampwidth() != 2:
            raise ValueError(f"expected 16-bit WAV, got {8 * f.getsampwidth()}-bit")
        frames = np.frombuffer(f.readframes(f.getnframes()), "<i2")
        samples = frames.reshape(-1, f.getnchannels()).astype(np.float32) / 32768.0
        return samples, f.getframerate()


def wav_bytes(samples, rate):
    """float `(frames, channels)` in [-1, 1] as the bytes of a 16-bit WAV file."""
    samples = np.asarray(samples, np.float32)
    if samples.ndim == 1:
        samples = samples[:, None]
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as f:
        f.setnchannels(pcm.shape[1])
        f.setsampwidth(2)
        f.setframerate(int(rate))
        f.writeframes(pcm.tobytes())
    return buffer.getvalue()


def render_wav(midi_path, wav_path, soundfont=None, sample_rate=WAV_SAMPLE_RATE, synth="auto"):
    """Render a MIDI file to 16-bit WAV (temporary file, then rename).

    Args:
        midi_path: the MIDI file (already known to be readable).
        wav_path: the WAV file to write.
        soundfont: see `synthesize`.
        sample_rate: for FluidSynth and sine waves.
        synth: one of `SYNTHS`.

    Returns:
        The synthesizer used.
    """
    samples, rate, used = synthesize(midi_path, synth, soundfont, sample_rate)
    data = wav_bytes(samples, rate)

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    write_atomic(wav_path, write)
    return used


def roll_audio(roll, steps_per_quarter, lowest_pitch, qpm=120.0, synth="auto", soundfont=None):
    """A state roll played as `synthesize` plays MIDI.

    Returns:
        `(samples, rate, synth)` as `synthesize`, or None for a silent roll.
    """
    import note_seq

    from biax_keras.music import representation

    sequence = representation.roll_to_note_sequence(
        roll, steps_per_quarter=steps_per_quarter, lowest_pitch=lowest_pitch, qpm=qpm)
    if not sequence.notes:
        return None
    buffer = io.BytesIO()
    note_seq.note_sequence_to_pretty_midi(sequence).write(buffer)
    return synthesize(buffer.getvalue(), synth, soundfont)
