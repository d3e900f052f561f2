"""Piano rolls as pictures: PNG files, TensorBoard images, the studio page.

`roll_image` draws every piano roll of the project: time runs left to right
in bars, with a line at each bar start (from the piece's own bar positions),
pitch bottom to top with a keyboard strip and a label at every C, held notes
in a light colour and the step where a note is struck dark, so repeated
notes stay apart. Probabilities (a model's output) are drawn as shades.
"""

import io
import logging
import os

import numpy as np

from biax_keras.files import write_atomic

log = logging.getLogger(__name__)
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

    from biax_keras.music.representation import pitch_name

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


def read_roll(midi_path):
    """All 128 pitches at sixteenth notes and the bar positions, through the bounded reader."""
    from biax_keras.music import representation

    return representation.midi_to_roll(midi_path, steps_per_quarter=PNG_STEPS_PER_QUARTER,
                                       lowest_pitch=0, num_notes=128)
