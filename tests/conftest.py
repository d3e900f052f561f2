"""Shared fixtures: MIDI files built in the test, good and broken.

`midi_bytes(...)` / the `write_midi` fixture build MIDI files with mido from
notes given in quarter notes; `broken_midi_folder` builds a folder mixing good
files with every kind of bad file `biax prepare` must skip.
"""

import os

import mido
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TICKS_PER_QUARTER = 480
# A million 4/4 bars, in quarter notes.
MILLION_BARS = 4_000_000
# mido writes deltas as MIDI variable-length numbers, at most 28 bits each.
_MAX_DELTA = 0x0FFFFFFF


def midi_bytes(notes, *, ticks_per_quarter=TICKS_PER_QUARTER, tempo=500_000,
               time_signature=(4, 4), controls=(), tempos=()):
    """A type-1 MIDI file: a meta track and one track of notes.

    Args:
        notes: `(pitch, start, end)` or `(pitch, start, end, channel)`, times
            in quarter notes.
        ticks_per_quarter: the header's resolution.
        tempo: initial tempo in microseconds per quarter (500000 = 120 qpm).
        time_signature: `(numerator, denominator)` or None.
        controls: `(quarter, control, value)` control changes on channel 0.
        tempos: `(quarter, microseconds per quarter)` later tempo changes.

    Returns:
        bytes of the file.
    """
    events = []  # (tick, order, message): note-offs before note-ons at one tick
    for note in notes:
        pitch, start, end = note[:3]
        channel = note[3] if len(note) > 3 else 0
        events.append((round(start * ticks_per_quarter), 1,
                       mido.Message("note_on", note=pitch, velocity=80, channel=channel)))
        events.append((round(end * ticks_per_quarter), 0,
                       mido.Message("note_off", note=pitch, velocity=0, channel=channel)))
    for quarter, control, value in controls:
        events.append((round(quarter * ticks_per_quarter), 0,
                       mido.Message("control_change", control=control, value=value)))
    meta = [(0, 0, mido.MetaMessage("set_tempo", tempo=tempo))]
    if time_signature:
        meta.append((0, 0, mido.MetaMessage("time_signature", numerator=time_signature[0],
                                            denominator=time_signature[1])))
    for quarter, value in tempos:
        meta.append((round(quarter * ticks_per_quarter), 0, mido.MetaMessage("set_tempo", tempo=value)))
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_quarter)
    for track_events in (meta, events):
        track = mido.MidiTrack()
        tick = 0
        for when, _, message in sorted(track_events, key=lambda e: (e[0], e[1])):
            delta = when - tick
            while delta > _MAX_DELTA:  # very long silences need several deltas
                track.append(mido.MetaMessage("marker", text="", time=_MAX_DELTA))
                delta -= _MAX_DELTA
            track.append(message.copy(time=delta))
            tick = when
        midi.tracks.append(track)
    import io

    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def unended_midi_bytes(pitches=(60, 64, 67)):
    """A MIDI file whose notes are struck (note-on) and never released."""
    import io

    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_QUARTER)
    track = mido.MidiTrack()
    for i, pitch in enumerate(pitches):
        track.append(mido.Message("note_on", note=pitch, velocity=80,
                                  time=TICKS_PER_QUARTER if i else 0))
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def with_division(data, division):
    """The same MIDI bytes with the header's time division replaced (crafted headers)."""
    return data[:12] + division.to_bytes(2, "big") + data[14:]


# A short C major phrase: held notes, a re-struck note, a chord.
PHRASE = [(60, 0, 2), (64, 0, 1), (64, 1, 2), (67, 2, 4), (72, 2, 4), (48, 0, 4)]


@pytest.fixture
def write_midi(tmp_path):
    """Factory: `write_midi(name, notes=PHRASE, **midi_bytes kwargs) -> Path`."""

    def write(name, notes=PHRASE, **kwargs):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(midi_bytes(notes, **kwargs))
        return path

    return write


@pytest.fixture
def broken_midi_folder(tmp_path):
    """A folder of good MIDI files and one file of every bad kind.

    Returns:
        `(folder, good, bad)`: good is a set of file names that must be read;
        bad maps file name -> a word its skip reason must contain.
    """
    folder = tmp_path / "midi"
    (folder / "sub").mkdir(parents=True)
    good_bytes = midi_bytes(PHRASE)
    files = {
        "good.mid": good_bytes,
        "sub/GOOD2.MID": midi_bytes([(p + 2, s, e) for p, s, e in PHRASE], time_signature=(3, 4)),
        "sub/good3.midi": midi_bytes(PHRASE * 1 + [(62, 4, 8)]),
        # A legal but very fine resolution: rescaled, not refused.
        "fine_resolution.mid": midi_bytes(PHRASE, ticks_per_quarter=32767),
        # A control change a million bars after the music: pulled in, not refused.
        "late_control.mid": midi_bytes(PHRASE, controls=[(MILLION_BARS, 7, 100)]),
        # Bad ones:
        "empty.mid": b"",
        "random.mid": bytes((i * 193 + 71) % 256 for i in range(4096)),
        "truncated.mid": good_bytes[: len(good_bytes) - 20],
        "text.midi": b"These are the lyrics, not the music.\n" * 20,
        "drums.mid": midi_bytes([(36, 0, 1, 9), (38, 1, 2, 9)]),
        "no_notes.mid": midi_bytes([]),
        "out_of_range.mid": midi_bytes([(5, 0, 1), (10, 1, 2), (120, 2, 3)]),
        "resolution_zero.mid": with_division(good_bytes, 0),
        "smpte_header.mid": with_division(good_bytes, 0xE728),
        "zero_tempo.mid": midi_bytes(PHRASE, tempo=0),
        "far_future.mid": midi_bytes(PHRASE + [(60, MILLION_BARS, MILLION_BARS + 1)]),
        "unended.mid": unended_midi_bytes(),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "README.txt").write_text("not MIDI, and not named like MIDI: ignored\n")
    good = {"good.mid", "sub/GOOD2.MID", "sub/good3.midi", "fine_resolution.mid", "late_control.mid"}
    bad = {
        "empty.mid": "empty",
        "random.mid": "not a MIDI file",
        "truncated.mid": "truncated",
        "text.midi": "not a MIDI file",
        "drums.mid": "drum",
        "no_notes.mid": "no notes",
        "out_of_range.mid": "outside the note range",
        "resolution_zero.mid": "resolution of 0",
        "smpte_header.mid": "SMPTE",
        "zero_tempo.mid": "tempo of 0",
        "far_future.mid": "too long",
        "unended.mid": "no note is ever ended",
    }
    return folder, good, bad
