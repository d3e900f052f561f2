"""The Bach chorales of music21's corpus, read as NoteSequences.

music21 ships the chorales as MusicXML; `bach_chorale_paths` finds them and
`_music21_file_to_note_sequence` turns one into a NoteSequence in playing
order (repeats unfolded, ties joined), as a MIDI file would hold it.
"""

import logging
from pathlib import Path

from biax_keras.errors import UserError
from biax_keras.music import representation

log = logging.getLogger(__name__)


def bach_chorale_paths():
    """Every Bach chorale in music21's corpus, by name.

    Follows music21's chorale catalogue (Riemenschneider's 371 numbers); the
    numbers that name the same file are read once, which leaves 350 chorales.

    Returns:
        dict `"bach/bwv269" -> Path` of the score file (None where the
        corpus lacks it), sorted by name.

    Raises:
        UserError: music21 or its corpus is missing.
    """
    try:
        from music21 import corpus
        from music21.corpus import chorales
    except ImportError:
        raise UserError("the `bach` source needs music21: pip install music21") from None
    folders = {p.parent for p in corpus.getComposer("bach")}
    names = sorted(set(chorales.Iterator(returnType="filename")))
    if not folders or not names:
        raise UserError("music21's corpus has no Bach chorales; reinstall music21")
    paths = {}
    for name in names:
        stem = name.split("/")[-1]
        exact = [folder / (stem + suffix) for folder in sorted(folders)
                 for suffix in (".mxl", ".xml", ".musicxml", ".krn")]
        exact = [p for p in exact if p.is_file()]
        if exact:
            paths[name] = exact[0]
            continue
        # A few catalogue names are a prefix of their file's (bwv18.5-l -> bwv18.5-lz).
        match = corpus.getWork(name)
        paths[name] = Path(match) if match and not isinstance(match, list) else None
    return paths


def _music21_play_order(part, measures):
    """Indices into `measures` in playing order, repeats expanded.

    Only this one part is expanded by music21 (which deep-copies everything
    it expands); the other parts follow the same order.
    """
    from music21 import bar, repeat

    if not any(True for _ in part.recurse().getElementsByClass((bar.Repeat, repeat.RepeatMark))):
        return list(range(len(measures)))
    index_of = {id(m): i for i, m in enumerate(measures)}
    try:
        expanded = part.expandRepeats()
        return [index_of[id(m.derivation.rootDerivation)] for m in expanded.getElementsByClass("Measure")]
    except MemoryError:
        raise  # the reader's memory bound: the file is skipped as too large
    except Exception as e:  # music21 raises its own kinds for odd repeat marks
        log.info("repeats not expanded (%s: %s)", type(e).__name__, e)
        return list(range(len(measures)))


def _music21_file_to_note_sequence(path):
    """Parse a score with music21 and write its notes into a NoteSequence.

    Goes straight from the score's offsets in quarter notes to times at 120 qpm
    (no MIDI round trip) and gives the notes a MIDI rendering of the score
    would: repeats played out, tied notes merged, grace notes skipped. A
    pickup bar becomes a time signature before time 0, so bar positions stay
    right.
    """
    from music21 import converter, meter, stream
    from note_seq.protobuf import music_pb2

    # forceSource: music21's pickle cache is slower to load than the score itself.
    score = converter.parse(str(path), forceSource=True)
    parts = list(score.parts) or [score]
    measures = [list(p.getElementsByClass(stream.Measure)) for p in parts]
    if not measures[0] or any(len(m) != len(measures[0]) for m in measures):
        raise representation.InvalidSequenceError("parts without measures, or of unequal length")
    order = _music21_play_order(parts[0], measures[0])

    seconds_per_quarter = 60.0 / representation.DEFAULT_QPM
    ns = music_pb2.NoteSequence()
    ns.filename = str(path)
    ns.ticks_per_quarter = representation.WRITE_TICKS_PER_QUARTER
    ns.tempos.add(time=0.0, qpm=representation.DEFAULT_QPM)

    notes = []  # [pitch, start, end, instrument] in quarters
    open_ties = [{} for _ in parts]  # per part: pitch -> index in notes
    meter_in_force = None
    cursor = -float(measures[0][order[0]].paddingLeft or 0.0)  # a pickup starts mid-bar
    for position, i in enumerate(order):
        first = measures[0][i]
        for ts in first.getElementsByClass(meter.TimeSignature):
            # Only changes: a repeated pickup bar must not move the bar line.
            if (ts.numerator, ts.denominator) != meter_in_force:
                meter_in_force = (ts.numerator, ts.denominator)
                time = cursor + float(ts.offset) if position else cursor
                ns.time_signatures.add(time=time * seconds_per_quarter,
                                       numerator=ts.numerator, denominator=ts.denominator)
        if position == 0:
            cursor = 0.0
        for instrument, part_measures in enumerate(measures):
            _collect_notes(part_measures[i], cursor, instrument, notes, open_ties[instrument])
        cursor += max(float(m[i].duration.quarterLength) for m in measures)
    for pitch, start, end, instrument in notes:
        ns.notes.add(pitch=pitch, velocity=representation.DEFAULT_VELOCITY,
                     start_time=start * seconds_per_quarter, end_time=end * seconds_per_quarter,
                     instrument=instrument)
    ns.total_time = max((n.end_time for n in ns.notes), default=0.0)
    return ns


def _collect_notes(measure, offset, instrument, notes, open_ties):
    """Append a measure's notes to `notes`, merging tied notes into one."""
    for element in measure.flatten().notes:
        length = float(element.quarterLength)
        if length <= 0:
            continue  # grace notes take their time from their neighbours
        start = offset + float(element.offset)
        members = element.notes if element.isChord else [element]
        for member in members:
            pitch = member.pitch.midi
            tie = member.tie.type if member.tie is not None else None
            held = open_ties.get(pitch)
            if tie in ("stop", "continue") and held is not None and abs(notes[held][2] - start) < 1e-6:
                notes[held][2] = start + length
                if tie == "stop":
                    del open_ties[pitch]
                continue
            notes.append([pitch, start, start + length, instrument])
            if tie in ("start", "continue"):
                open_ties[pitch] = len(notes) - 1
            else:
                open_ties.pop(pitch, None)
