"""MIDI to sound and pictures: `biax render`, `biax generate --wav`, TensorBoard, `biax studio`.

    biax render out/demo.mid --to wav --to png    # out/demo.wav and out/demo.png
    biax render out/quality --to png --out-dir pictures
    biax render chorale.mid sample.mid --compare  # chorale_vs_sample.png, one above the other

Sound. Files are played through a General MIDI soundfont by the
`midirenderer` wheel (a synthesizer compiled into the wheel: no system
library), with the soundfont that pretty_midi installs (TimGM6mb.sf2, a
piano on program 0) unless `--soundfont FILE.sf2` or `$BIAX_SOUNDFONT` names
another. FluidSynth is used where asked for (`--synth fluidsynth`, with
`pip install 'biax_keras[audio]'` and the FluidSynth library). Sine waves
(pretty_midi's own synthesizer) are the last resort, used only when neither
is there or when asked for (`--synth sine`), and a warning says so. Audio is
normalized to a peak of -1 dBFS and written as 16-bit WAV (48 kHz stereo
from the soundfont synthesizer, 44.1 kHz mono otherwise).

Pictures. `roll_image` draws every piano roll of the project (PNG files,
TensorBoard images, the studio page): time runs left to right in bars, with
a line at each bar start (from the piece's own bar positions), pitch bottom
to top with a keyboard strip and a label at every C, held notes in a light
colour and the step where a note is struck dark, so repeated notes stay
apart. Probabilities (a model's output) are drawn as shades.

Every file is first read through `representation.midi_to_roll`, with its
bounds on length and memory, so a corrupt or absurd file is skipped with its
reason and the batch goes on. Outputs are written to a temporary file and
renamed.
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

FORMATS = ("wav", "png")
SYNTHS = ("auto", "soundfont", "fluidsynth", "sine")
PNG_STEPS_PER_QUARTER = 4
STEPS_PER_BAR = 16  # 4/4 at sixteenth notes, where a roll comes without bar positions

# Picture geometry, in pixels.
_DPI = 100
_PX_PER_STEP = 6  # at most; long pieces get fewer so the picture stays on a screen
_PLOT_WIDTH = (360, 1800)  # smallest and largest width of the roll itself
_PX_PER_PITCH = 6
_PANEL_HEIGHT = (150, 460)
_LEFT, _RIGHT, _TOP, _BOTTOM, _GAP = 64, 16, 24, 42, 40
_KEYBOARD = 14  # width of the keyboard strip
_MIN_PITCHES = 24  # at least two octaves are shown
_PROBABILITY_FLOOR = 0.05  # shades below this do not widen the pitch range

# Colours (RGB in [0, 1]).
_WHITE_ROW = (1.0, 1.0, 1.0)
_BLACK_ROW = (0.93, 0.94, 0.96)  # rows of the black keys, shaded like a keyboard
_HELD = (0.55, 0.71, 0.90)
_STRUCK = (0.05, 0.19, 0.42)
_SHADE = (0.42, 0.13, 0.55)  # a probability of 1
_BAR_LINE = (0.45, 0.45, 0.45)
_BLACK_KEYS = frozenset((1, 3, 6, 8, 10))


# ----------------------------------------------------------------------------
# Sound
# ----------------------------------------------------------------------------


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

    from biax_keras import representation

    sequence = representation.roll_to_note_sequence(
        roll, steps_per_quarter=steps_per_quarter, lowest_pitch=lowest_pitch, qpm=qpm)
    if not sequence.notes:
        return None
    buffer = io.BytesIO()
    note_seq.note_sequence_to_pretty_midi(sequence).write(buffer)
    return synthesize(buffer.getvalue(), synth, soundfont)


# ----------------------------------------------------------------------------
# Pictures
# ----------------------------------------------------------------------------


def _bar_starts(beat, steps):
    if beat is None:
        return np.arange(0, steps, STEPS_PER_BAR)
    beat = np.asarray(beat)[:steps]
    starts = np.flatnonzero(beat == 0)
    return starts if starts.size else np.arange(0, steps, STEPS_PER_BAR)


def _is_roll(panel):
    return panel.ndim == 3


def _pitch_span(panels, lowest_pitch):
    """Lowest and highest MIDI pitch to draw: what is played, widened to whole octaves."""
    played = []
    for panel in panels:
        level = panel[..., 0] if _is_roll(panel) else panel
        played.extend(np.flatnonzero((level > _PROBABILITY_FLOOR).any(axis=0)) + lowest_pitch)
    if played:
        low, high = min(played) - 1, max(played) + 1
    else:
        low, high = 48, 71  # an empty piece: C3..B4
    low, high = 12 * (low // 12), 12 * (high // 12) + 11
    while high - low + 1 < _MIN_PITCHES:
        low, high = (low - 12, high) if low >= 12 else (low, high + 12)
    return max(low, 0), min(high, 127)


def _panel_pixels(panel, lowest_pitch, low, high):
    """RGB `(pitches, steps, 3)`, highest pitch in row 0."""
    steps = panel.shape[0]
    pitches = np.arange(high, low - 1, -1)
    background = np.where(np.isin(pitches % 12, list(_BLACK_KEYS))[:, None, None],
                          _BLACK_ROW, _WHITE_ROW) * np.ones((1, steps, 1))
    index = pitches - lowest_pitch
    inside = (index >= 0) & (index < panel.shape[1])
    pixels = background.astype(np.float32)
    rows = np.flatnonzero(inside)
    if _is_roll(panel):
        play = panel[:, index[rows], 0].T > 0.5
        struck = play & (panel[:, index[rows], 1].T > 0.5)
        # A note sounding at a step where nothing sounded before is struck,
        # even in a play-only roll.
        before = np.concatenate([np.zeros((play.shape[0], 1), bool), play[:, :-1]], axis=1)
        struck |= play & ~before
        pixels[rows] = np.where(play[..., None], _HELD, pixels[rows])
        pixels[rows] = np.where(struck[..., None], _STRUCK, pixels[rows])
    else:
        shade = np.clip(panel[:, index[rows]].T, 0.0, 1.0)[..., None]
        pixels[rows] = pixels[rows] * (1 - shade) + np.asarray(_SHADE) * shade
    return pixels


def roll_image(*panels, titles=(), lowest_pitch=0, beats=None, span_of=None):
    """Piano rolls one above the other, labelled, as an RGB picture.

    Args:
        *panels: state rolls `(steps, notes, 2)` (play, articulate: held
            notes light, struck steps dark) or probabilities `(steps, notes)`
            in [0, 1] (shades). Their lengths may differ; they share one time
            scale and one pitch range.
        titles: a title per panel (fewer are fine).
        lowest_pitch: MIDI pitch of note index 0 of every panel.
        beats: bar positions `(steps,)` for each panel (a list, entries may be
            None), or one array for all; a bar line is drawn where the
            position is 0. None: bars of `STEPS_PER_BAR` steps.
        span_of: indices of the panels whose notes set the pitch range shown
            (None: all), e.g. `[0]` to show a model's probabilities only
            around the true notes.

    Returns:
        np.uint8 `(height, width, 3)`: time in bars to the right, pitch up,
        a keyboard strip with every C named on the left.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from biax_keras.representation import pitch_name

    if not panels:
        raise ValueError("roll_image needs at least one panel")
    panels = [np.asarray(p, np.float32) for p in panels]
    for p in panels:
        if p.ndim not in (2, 3) or (p.ndim == 3 and p.shape[2] != 2):
            raise ValueError(f"a panel is (steps, notes, 2) or (steps, notes), got {p.shape}")
    if beats is None or (not isinstance(beats, (list, tuple))):
        beats = [beats] * len(panels)
    steps = max(max(p.shape[0] for p in panels), 1)
    low, high = _pitch_span([panels[i] for i in (range(len(panels)) if span_of is None else span_of)],
                            lowest_pitch)
    pitches = high - low + 1

    plot_width = int(np.clip(steps * _PX_PER_STEP, *_PLOT_WIDTH))
    panel_height = int(np.clip(pitches * _PX_PER_PITCH, *_PANEL_HEIGHT))
    left = _LEFT + _KEYBOARD
    width = left + plot_width + _RIGHT
    height = _TOP + len(panels) * panel_height + (len(panels) - 1) * _GAP + _BOTTOM
    figure = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
    canvas = FigureCanvasAgg(figure)
    keys = np.array([[(0.1, 0.1, 0.1) if p % 12 in _BLACK_KEYS else (1.0, 1.0, 1.0)]
                     for p in range(high, low - 1, -1)], np.float32)
    c_pitches = [p for p in range(low, high + 1) if p % 12 == 0]

    for number, panel in enumerate(panels):
        top = _TOP + number * (panel_height + _GAP)
        bottom = (height - top - panel_height) / height
        axes = figure.add_axes((left / width, bottom, plot_width / width, panel_height / height))
        strip = figure.add_axes(((left - _KEYBOARD) / width, bottom, _KEYBOARD / width,
                                 panel_height / height))
        extent = (0, panel.shape[0], low - 0.5, high + 0.5)
        axes.imshow(_panel_pixels(panel, lowest_pitch, low, high), aspect="auto",
                    interpolation="nearest", extent=extent)
        axes.set_xlim(0, steps)
        axes.set_ylim(low - 0.5, high + 0.5)
        if panel.shape[0] < steps:  # a shorter piece ends where its picture ends
            axes.add_patch(Rectangle((panel.shape[0], low - 0.5), steps - panel.shape[0], pitches,
                                     color=(0.97, 0.97, 0.97), zorder=0))
        for c in c_pitches:
            axes.axhline(c - 0.5, color=(0.75, 0.75, 0.75), linewidth=0.6)
        bar_starts = _bar_starts(beats[number], panel.shape[0])
        for start in bar_starts:
            axes.axvline(start, color=_BAR_LINE, linewidth=0.8)
        # Bar numbers, thinned so that labels never overlap.
        every = max(1, int(np.ceil(len(bar_starts) * 28 / plot_width)))
        ticks = bar_starts[::every]
        axes.set_xticks(ticks)
        axes.set_xticklabels([str(i * every + 1) for i in range(len(ticks))], fontsize=8)
        axes.set_yticks([])
        axes.tick_params(axis="x", length=3, pad=2)
        if number == len(panels) - 1:
            axes.set_xlabel("bar", fontsize=9, labelpad=2)
        if number < len(titles) and titles[number]:
            axes.set_title(str(titles[number]), fontsize=9, loc="left", pad=4)

        strip.imshow(keys, aspect="auto", interpolation="nearest",
                     extent=(0, 1, low - 0.5, high + 0.5))
        strip.set_xticks([])
        strip.set_yticks(c_pitches)
        strip.set_yticklabels([pitch_name(c) for c in c_pitches], fontsize=8)
        strip.tick_params(axis="y", length=2, pad=2)
        strip.set_ylim(low - 0.5, high + 0.5)

    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_png(picture, png_path):
    """Write an RGB uint8 picture as a PNG (temporary file, then rename)."""
    from matplotlib import image

    write_atomic(png_path, lambda tmp: image.imsave(tmp, picture, format="png"))


def png_bytes(picture):
    """The bytes of a PNG of an RGB uint8 picture."""
    from matplotlib import image

    buffer = io.BytesIO()
    image.imsave(buffer, picture, format="png")
    return buffer.getvalue()


def render_png(midi_path, png_path, roll=None, beat=None, title=None):
    """Write the piano roll of a MIDI file as a PNG (temporary file, then rename)."""
    if roll is None:
        roll, beat = read_roll(midi_path)
    title = os.path.basename(os.fspath(midi_path)) if title is None else title
    save_png(roll_image(roll, titles=[title], beats=[beat]), png_path)


# ----------------------------------------------------------------------------
# biax render
# ----------------------------------------------------------------------------


def render(paths, to=("wav",), out_dir=None, synth="auto", soundfont=None,
           sample_rate=WAV_SAMPLE_RATE):
    """Render MIDI files to WAV and/or PNG: `biax render`.

    Args:
        paths: MIDI files and folders (searched recursively for .mid/.midi/.kar).
        to: formats to write, from `FORMATS`.
        out_dir: where to write; None writes next to each MIDI file. Files
            found in a folder keep their path relative to that folder.
        synth: one of `SYNTHS` (see `choose_synth`).
        soundfont: .sf2 for the soundfont synthesizer and FluidSynth (default
            `$BIAX_SOUNDFONT`, else pretty_midi's bundled one).
        sample_rate: of WAV files from FluidSynth and sine waves.

    Returns:
        dict: "written" (`[{"midi", "wav"?, "png"?}]`), "skipped"
        (`[{"path", "reason"}]`), "synth" (the synthesizer used for WAV, or
        None).

    Raises:
        UserError: a path that does not exist, no MIDI file found, an unknown
            format or synth, an --out-dir that is a file, a synthesizer or
            soundfont asked for and missing, or no file that could be rendered.
    """
    formats = tuple(dict.fromkeys(to))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UserError(f"--to must be one of {', '.join(FORMATS)}, got {', '.join(unknown) or 'none'}")
    _check_out_dir(out_dir)
    used_synth = None
    if "wav" in formats:
        soundfont = check_audio(soundfont, flag="--to wav", synth=synth)
        used_synth = choose_synth(synth)

    jobs = []  # (midi path, output stem)
    for path in paths:
        path = os.fspath(path)
        for midi in _midi_files_of(path):
            if out_dir is None:
                stem = os.path.splitext(midi)[0]
            else:
                relative = os.path.relpath(midi, path) if os.path.isdir(path) else os.path.basename(midi)
                stem = os.path.join(os.fspath(out_dir), os.path.splitext(relative)[0])
            jobs.append((midi, stem))

    written, skipped = [], []
    for midi, stem in jobs:
        try:
            roll, beat = read_roll(midi)
        except _unreadable() as e:
            skipped.append({"path": midi, "reason": str(e) or type(e).__name__})
            continue
        os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
        entry = {"midi": midi}
        if "wav" in formats:
            entry["wav"] = stem + ".wav"
            render_wav(midi, entry["wav"], soundfont, sample_rate, synth=used_synth)
        if "png" in formats:
            entry["png"] = stem + ".png"
            render_png(midi, entry["png"], roll=roll, beat=beat)
        written.append(entry)
    if not written:
        reasons = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:3])
        raise UserError(f"none of the {len(skipped)} MIDI file(s) could be rendered ({reasons})")
    return {"written": written, "skipped": skipped, "synth": used_synth}


def compare(paths, out_dir=None):
    """Piano rolls of several MIDI files one above the other in one PNG: `--compare`.

    Args:
        paths: two or more MIDI files, drawn top to bottom on one time scale.
        out_dir: where to write `A_vs_B.png`; None: beside the first file.

    Returns:
        dict: "png" (the file written) and "midi" (the files, in order).

    Raises:
        UserError: fewer than two files, a folder, a file that cannot be read.
    """
    paths = [os.fspath(p) for p in paths]
    if len(paths) < 2:
        raise UserError("--compare needs two or more MIDI files, e.g. "
                        "`biax render chorale.mid sample.mid --compare`")
    _check_out_dir(out_dir)
    rolls, beats = [], []
    for path in paths:
        if os.path.isdir(path):
            raise UserError(f"--compare takes MIDI files, and {path} is a folder")
        if not os.path.exists(path):
            raise UserError(f"{path} does not exist; give MIDI files to compare")
        try:
            roll, beat = read_roll(path)
        except _unreadable() as e:
            raise UserError(f"cannot compare {path}: {e or type(e).__name__}") from None
        rolls.append(roll)
        beats.append(beat)
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    folder = os.fspath(out_dir) if out_dir is not None else os.path.dirname(os.path.abspath(paths[0]))
    os.makedirs(folder, exist_ok=True)
    png = os.path.join(folder, "_vs_".join(stems) + ".png")
    save_png(roll_image(*rolls, titles=[os.path.basename(p) for p in paths], beats=beats), png)
    return {"png": png, "midi": paths}


def _check_out_dir(out_dir):
    if out_dir is not None and os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UserError(f"--out-dir {out_dir} is a file, not a folder; give a folder to write into")


def _midi_files_of(path):
    from biax_keras.musicstats import midi_files

    if not os.path.exists(path):
        raise UserError(f"{path} does not exist; give MIDI files or folders of them")
    found = midi_files(path)
    if not found:
        raise UserError(f"no MIDI files (.mid, .midi, .kar) in {path}")
    return found


def _unreadable():
    from biax_keras import representation

    return (representation.RepresentationError, OSError)


def read_roll(midi_path):
    """All 128 pitches at sixteenth notes and the bar positions, through the bounded reader."""
    from biax_keras import representation

    return representation.midi_to_roll(midi_path, steps_per_quarter=PNG_STEPS_PER_QUARTER,
                                       lowest_pitch=0, num_notes=128)
