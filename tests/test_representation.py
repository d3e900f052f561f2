"""Known values and round trips of NoteSequence <-> state roll."""

import mido
import numpy as np
import pytest
from conftest import MILLION_BARS, PHRASE, midi_bytes
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from note_seq.protobuf import music_pb2

from biax_keras.music import representation as rep

SECONDS_PER_QUARTER = 0.5  # at 120 qpm


def sequence(notes, qpm=120.0, time_signatures=((0.0, 4, 4),), tempos=(), controls=()):
    """A NoteSequence from `(pitch, start_s, end_s[, is_drum])`."""
    ns = music_pb2.NoteSequence()
    ns.tempos.add(time=0.0, qpm=qpm)
    for time, value in tempos:
        ns.tempos.add(time=time, qpm=value)
    for time, numerator, denominator in time_signatures:
        ns.time_signatures.add(time=time, numerator=numerator, denominator=denominator)
    for note in notes:
        pitch, start, end = note[:3]
        ns.notes.add(pitch=pitch, start_time=start, end_time=end, velocity=80,
                     is_drum=bool(note[3]) if len(note) > 3 else False)
    for time, number, value in controls:
        ns.control_changes.add(time=time, control_number=number, control_value=value)
    return ns


def column(roll, pitch, lowest=rep.DEFAULT_LOWEST_PITCH):
    """Play and articulate of one pitch as two lists."""
    return roll[:, pitch - lowest, 0].tolist(), roll[:, pitch - lowest, 1].tolist()


# ----------------------------------------------------------------------------
# Known values
# ----------------------------------------------------------------------------


def test_held_note_is_articulated_once():
    roll, beat, dropped = rep.note_sequence_to_roll(sequence([(60, 0.0, 1.0)]))
    assert roll.dtype == np.uint8 and beat.dtype == np.int32
    assert roll.shape == (8, 78, 2) and dropped == 0
    assert column(roll, 60) == ([1] * 8, [1] + [0] * 7)
    assert roll.sum() == 9  # nothing else sounds


def test_restruck_note_is_articulated_again():
    ns = sequence([(60, 0.0, 0.5), (60, 0.5, 1.0)])
    roll = rep.note_sequence_to_roll(ns).roll
    assert column(roll, 60) == ([1] * 8, [1, 0, 0, 0, 1, 0, 0, 0])


def test_overlapping_instances_of_one_pitch_restrike():
    ns = sequence([(60, 0.0, 1.0), (60, 0.25, 0.5)])
    roll = rep.note_sequence_to_roll(ns).roll
    assert column(roll, 60) == ([1] * 8, [1, 0, 1, 0, 0, 0, 0, 0])


def test_note_shorter_than_a_step_lasts_one_step():
    roll = rep.note_sequence_to_roll(sequence([(60, 0.5, 0.51)])).roll
    assert roll.shape[0] == 5
    assert column(roll, 60) == ([0, 0, 0, 0, 1], [0, 0, 0, 0, 1])


def test_tempo_change_is_integrated():
    # 120 qpm for 4 quarters (2 s), then 60 qpm: 3 s is quarter 5, step 20.
    ns = sequence([(60, 3.0, 4.0)], tempos=[(2.0, 60.0)])
    roll = rep.note_sequence_to_roll(ns).roll
    assert np.flatnonzero(roll[:, 60 - 24, 1]).tolist() == [20]
    assert roll.shape[0] == 24


def test_thousands_of_tempo_changes_quantize():
    # Real piano MIDI carries a tempo change every beat; note_seq's quantizer refuses them.
    ns = sequence([])
    time, expected = 0.0, []
    for quarter in range(1500):
        qpm = (90.0, 130.0, 111.0)[quarter % 3]
        ns.tempos.add(time=time, qpm=qpm)
        if quarter % 4 == 0:
            ns.notes.add(pitch=60 + quarter % 12, start_time=time, end_time=time + 30 / qpm, velocity=80)
            expected.append(quarter * 4)
        time += 60.0 / qpm
    roll = rep.note_sequence_to_roll(ns).roll
    assert np.flatnonzero(roll[..., 1].any(axis=1)).tolist() == expected


@pytest.mark.parametrize("signature,per_bar", [((4, 4), 16), ((3, 4), 12), ((6, 8), 12), ((2, 2), 16)])
def test_bar_positions_follow_the_time_signature(signature, per_bar):
    ns = sequence([(60, 0.0, 8.0)], time_signatures=[(0.0, *signature)])
    beat = rep.note_sequence_to_roll(ns).beat
    assert beat.tolist() == [s % per_bar for s in range(64)]
    assert rep.bar_steps(signature) == per_bar


def test_time_signature_change_mid_piece_restarts_the_bar():
    # Two bars of 4/4 (32 steps, 4 s), then 3/4.
    ns = sequence([(60, 0.0, 7.0)], time_signatures=[(0.0, 4, 4), (4.0, 3, 4)])
    beat = rep.note_sequence_to_roll(ns).beat
    assert beat[:32].tolist() == list(range(16)) * 2
    assert beat[32:56].tolist() == list(range(12)) * 2


def test_pickup_is_a_time_signature_before_zero():
    # A one-quarter pickup: the first bar line is 3 quarters before time 0.
    ns = sequence([(60, 0.0, 1.0)], time_signatures=[(-1.5, 4, 4)])
    assert rep.note_sequence_to_roll(ns).beat[:6].tolist() == [12, 13, 14, 15, 0, 1]


def test_no_time_signature_means_four_four():
    ns = sequence([(60, 0.0, 5.0)], time_signatures=[])
    assert rep.note_sequence_to_roll(ns).beat[14:18].tolist() == [14, 15, 0, 1]


def test_steps_per_quarter_and_range_are_configurable():
    ns = sequence([(21, 0.0, 0.5), (108, 0.5, 1.0)])
    roll, beat, dropped = rep.note_sequence_to_roll(ns, steps_per_quarter=2, lowest_pitch=21,
                                                    num_notes=88)
    assert roll.shape == (4, 88, 2) and dropped == 0
    assert column(roll, 21, 21) == ([1, 1, 0, 0], [1, 0, 0, 0])
    assert column(roll, 108, 21) == ([0, 0, 1, 1], [0, 0, 1, 0])
    assert beat.tolist() == [0, 1, 2, 3]


def test_sustain_pedal_extends_notes_until_release():
    # Pedal down at 0.25 s, up at 1.5 s: the note released at 0.5 s sounds to 1.5 s.
    ns = sequence([(60, 0.0, 0.5), (64, 1.0, 1.25)],
                  controls=[(0.25, 64, 127), (1.5, 64, 0)])
    roll = rep.note_sequence_to_roll(ns).roll
    assert column(roll, 60) == ([1] * 12, [1] + [0] * 11)
    assert column(roll, 64)[0] == [0] * 8 + [1] * 4


def test_restrike_under_the_pedal_is_a_new_note():
    ns = sequence([(60, 0.0, 0.25), (60, 0.5, 0.75)], controls=[(0.1, 64, 127), (1.0, 64, 0)])
    roll = rep.note_sequence_to_roll(ns).roll
    assert column(roll, 60) == ([1] * 8, [1, 0, 0, 0, 1, 0, 0, 0])


def test_drums_are_dropped():
    ns = sequence([(60, 0.0, 0.5), (36, 0.0, 2.0, True)])
    roll, _, dropped = rep.note_sequence_to_roll(ns)
    assert roll.shape[0] == 4 and dropped == 0
    assert roll[:, 36 - 24].sum() == 0
    with pytest.raises(rep.NoNotesError, match="drum"):
        rep.note_sequence_to_roll(sequence([(36, 0.0, 1.0, True)]))


def test_out_of_range_notes_are_dropped_and_counted():
    ns = sequence([(60, 0.0, 0.5), (10, 0.0, 0.5), (110, 0.0, 3.0)])
    roll, _, dropped = rep.note_sequence_to_roll(ns)
    assert dropped == 2 and roll.shape[0] == 4 and roll.sum() == 5
    with pytest.raises(rep.OutOfRangeError, match="outside the note range"):
        rep.note_sequence_to_roll(sequence([(10, 0.0, 0.5)]))


def test_unusable_sequences_raise_named_errors():
    with pytest.raises(rep.NoNotesError):
        rep.note_sequence_to_roll(sequence([]))
    with pytest.raises(rep.TooLongError, match="too long"):
        rep.note_sequence_to_roll(sequence([(60, 1e9, 1e9 + 1)]))
    with pytest.raises(rep.InvalidTempoError):
        rep.note_sequence_to_roll(sequence([(60, 0.0, 1.0)], qpm=0.0))
    with pytest.raises(rep.InvalidSequenceError):
        rep.note_sequence_to_roll(sequence([(60, -1.0, 1.0)]))
    assert issubclass(rep.RepresentationError, ValueError)


def test_bar_positions_for_generated_music():
    assert rep.bar_positions(5, 4, (3, 4), offset=10).tolist() == [10, 11, 0, 1, 2]
    assert rep.bar_positions(3).dtype == np.int32


def test_pitch_sets_are_play_only():
    roll, beat, dropped = rep.pitch_sets_to_roll([[60, 64], [60], [], [200]], 1, 21, 88)
    assert roll.shape == (4, 88, 2) and dropped == 1
    assert roll[..., 1].sum() == 0 and roll[..., 0].sum() == 3
    assert beat.tolist() == [0, 1, 2, 3]


# ----------------------------------------------------------------------------
# roll -> NoteSequence -> MIDI
# ----------------------------------------------------------------------------


def test_held_notes_stay_one_note_restruck_become_two():
    roll = np.zeros((8, 78, 2), np.uint8)
    roll[0:8, 36] = [1, 0]
    roll[0, 36, 1] = 1
    roll[0:4, 40] = [1, 0]
    roll[0, 40, 1] = roll[2, 40, 1] = 1
    ns = rep.roll_to_note_sequence(roll, qpm=60)
    notes = sorted((n.pitch, n.start_time, n.end_time) for n in ns.notes)
    assert notes == [(60, 0.0, 2.0), (64, 0.0, 0.5), (64, 0.5, 1.0)]
    assert ns.tempos[0].qpm == 60 and ns.time_signatures[0].numerator == 4


def test_play_only_roll_gives_one_note_per_run():
    roll = np.zeros((6, 10, 2), np.float32)
    roll[1:3, 2, 0] = 1.0
    roll[4:6, 2, 0] = 0.9
    notes = [(n.start_time, n.end_time) for n in rep.roll_to_note_sequence(roll, lowest_pitch=60).notes]
    assert notes == [(0.125, 0.375), (0.5, 0.75)]


def test_roll_to_midi_writes_tempo_time_signature_and_round_trips(tmp_path):
    roll, beat = rep.midi_to_roll(_write(tmp_path / "in.mid", midi_bytes(PHRASE)))
    path = tmp_path / "out.mid"
    rep.roll_to_midi(roll, path, qpm=90, time_signature=(3, 4))
    metas = [m for m in mido.MidiFile(path).tracks[0] if m.is_meta]
    assert any(m.type == "set_tempo" and round(mido.tempo2bpm(m.tempo)) == 90 for m in metas)
    assert any(m.type == "time_signature" and (m.numerator, m.denominator) == (3, 4) for m in metas)
    again, again_beat = rep.midi_to_roll(path)
    np.testing.assert_array_equal(again, roll)
    assert again_beat.tolist() == [s % 12 for s in range(len(roll))]
    assert [p.name for p in tmp_path.iterdir()] != [] and not list(tmp_path.glob(".*tmp"))


def test_midi_to_roll_reads_known_values(tmp_path):
    roll, beat = rep.midi_to_roll(_write(tmp_path / "a.mid", midi_bytes(PHRASE)))
    assert roll.shape == (16, 78, 2)
    assert column(roll, 60) == ([1] * 8 + [0] * 8, [1] + [0] * 15)
    assert column(roll, 64)[1] == [1, 0, 0, 0, 1, 0, 0, 0] + [0] * 8
    assert beat.tolist() == list(range(16))


def test_fine_resolution_and_late_events_are_read_the_same(tmp_path):
    expected, _ = rep.midi_to_roll(_write(tmp_path / "a.mid", midi_bytes(PHRASE)))
    fine, _ = rep.midi_to_roll(_write(tmp_path / "b.mid", midi_bytes(PHRASE, ticks_per_quarter=32767)))
    late, _ = rep.midi_to_roll(_write(tmp_path / "c.mid",
                                      midi_bytes(PHRASE, controls=[(MILLION_BARS, 7, 1)])))
    np.testing.assert_array_equal(fine, expected)
    np.testing.assert_array_equal(late, expected)


def test_midi_tempo_changes_and_three_four(tmp_path):
    # 120 qpm, then 40 qpm from quarter 2: the note at quarter 3 is still step 12.
    data = midi_bytes([(60, 3, 4)], tempos=[(2, 1_500_000)], time_signature=(3, 4))
    roll, beat = rep.midi_to_roll(_write(tmp_path / "t.mid", data))
    assert np.flatnonzero(roll[:, 36, 1]).tolist() == [12]
    assert beat.tolist() == [s % 12 for s in range(16)]


def _write(path, data):
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------
# Properties
# ----------------------------------------------------------------------------


@st.composite
def valid_rolls(draw, max_steps=24, max_notes=10):
    """Rolls that obey the invariants: articulate only where play, and on the
    first step of every run of play."""
    steps = draw(st.integers(1, max_steps))
    notes = draw(st.integers(1, max_notes))
    play = draw(hnp.arrays(np.uint8, (steps, notes), elements=st.integers(0, 1)))
    strike = draw(hnp.arrays(np.uint8, (steps, notes), elements=st.integers(0, 1)))
    before = np.concatenate([np.zeros((1, notes), np.uint8), play[:-1]])
    articulate = play & (strike | (1 - before))
    return np.stack([play, articulate], axis=-1)


def trim(roll):
    """Drop trailing silent steps: a sequence ends with its last note."""
    sounding = np.flatnonzero(roll[..., 0].any(axis=1))
    return roll[: sounding[-1] + 1] if len(sounding) else roll[:0]


@settings(max_examples=60, deadline=None)
@given(roll=valid_rolls(), spq=st.sampled_from([1, 2, 3, 4, 6]),
       qpm=st.sampled_from([60.0, 97.0, 120.0, 183.5]),
       signature=st.sampled_from([(4, 4), (3, 4), (6, 8)]),
       lowest=st.integers(0, 100))
def test_roll_to_sequence_to_roll_is_identity(roll, spq, qpm, signature, lowest):
    assume(roll[..., 0].any())
    ns = rep.roll_to_note_sequence(roll, spq, lowest, qpm, signature)
    back, beat, dropped = rep.note_sequence_to_roll(ns, spq, lowest, roll.shape[1])
    np.testing.assert_array_equal(back, trim(roll))
    np.testing.assert_array_equal(beat, rep.bar_positions(len(back), spq, signature))
    assert dropped == 0


@st.composite
def quantized_sequences(draw):
    """NoteSequences whose notes sit on a 16th grid, overlaps and repeats allowed."""
    notes = draw(st.lists(st.tuples(st.integers(40, 50), st.integers(0, 30), st.integers(1, 12)),
                          min_size=1, max_size=25))
    qpm = draw(st.sampled_from([60.0, 120.0, 75.0]))
    step = 60.0 / qpm / 4
    return sequence([(p, s * step, (s + d) * step) for p, s, d in notes], qpm=qpm)


@settings(max_examples=60, deadline=None)
@given(ns=quantized_sequences())
def test_sequence_to_roll_to_sequence_to_roll_is_stable(ns):
    first = rep.note_sequence_to_roll(ns, lowest_pitch=36, num_notes=24)
    again = rep.note_sequence_to_roll(
        rep.roll_to_note_sequence(first.roll, lowest_pitch=36, qpm=ns.tempos[0].qpm),
        lowest_pitch=36, num_notes=24)
    np.testing.assert_array_equal(again.roll, first.roll)
    np.testing.assert_array_equal(again.beat, first.beat)
    # Invariants of every roll the reader makes.
    assert not (first.roll[..., 1] & ~first.roll[..., 0]).any()
    before = np.concatenate([np.zeros((1, 24), np.uint8), first.roll[:-1, :, 0]])
    assert (first.roll[..., 1] >= (first.roll[..., 0] & (1 - before))).all()


def test_a_pickup_bar_is_its_own_short_bar_or_a_rest_that_completes_it():
    roll = np.zeros((20, 78, 2), np.uint8)
    roll[:, 36, 0] = 1
    roll[0, 36, 1] = 1
    sixteenths = rep.roll_to_note_sequence(roll, 4, 24, qpm=120, pickup_steps=3)
    step = 60 / 120 / 4
    assert [(t.numerator, t.denominator, t.time) for t in sixteenths.time_signatures] == [
        (3, 16, 0.0), (4, 4, pytest.approx(3 * step))]
    assert sixteenths.notes[0].start_time == 0.0
    # Two steps of a triplet grid are no power-of-two fraction of a whole
    # note: a rest of 7 steps completes the 9-step bar of 3/4 before them.
    triplets = rep.roll_to_note_sequence(roll, 3, 24, qpm=120, time_signature=(3, 4),
                                                    pickup_steps=2)
    assert [(t.numerator, t.denominator, t.time) for t in triplets.time_signatures] == [
        (3, 4, 0.0)]
    assert triplets.notes[0].start_time == pytest.approx(7 * 60 / 120 / 3)
    assert rep.pickup_signature(8, 4) == (2, 4)
    assert rep.pickup_signature(2, 3) is None


def test_notes_never_ended_are_named_as_the_cause(tmp_path):
    from conftest import unended_midi_bytes

    path = tmp_path / "unended.mid"
    path.write_bytes(unended_midi_bytes())
    with pytest.raises(rep.UnendedNotesError, match="no note is ever ended"):
        rep.midi_to_roll(str(path))


def test_ctrl_c_while_parsing_stops_the_run_not_skips_the_file(tmp_path, monkeypatch):
    # note_seq wraps whatever its parser raises, KeyboardInterrupt included, in
    # MIDIConversionError: read as a bad file, a Ctrl-C (or SIGTERM) would be
    # swallowed and `biax prepare` would read on to the end.
    import pretty_midi

    from biax_keras.data.readers import _read_task

    class Interrupted(pretty_midi.PrettyMIDI):
        def __init__(self, *args, **kwargs):
            raise KeyboardInterrupt

    monkeypatch.setattr(pretty_midi, "PrettyMIDI", Interrupted)
    path = tmp_path / "piece.mid"
    path.write_bytes(midi_bytes([(60, 0, 2), (64, 2, 4)]))
    with pytest.raises(KeyboardInterrupt):
        rep.read_midi(str(path), 4)
    settings = (4, rep.DEFAULT_LOWEST_PITCH, rep.DEFAULT_NUM_NOTES, rep.DEFAULT_MAX_STEPS)
    with pytest.raises(KeyboardInterrupt):
        _read_task((0, "piece", "midi", str(path)), settings)


@pytest.mark.parametrize("raised, reason", [("timeout", "took longer than 5 s to read"),
                                            ("memory", "ran out of memory while reading it")])
def test_a_readers_limits_are_not_taken_for_a_bad_file(tmp_path, monkeypatch, raised, reason):
    # A file's time limit or memory running out, raised inside mido's or note_seq's
    # catch-all handlers, is said as such, not as "corrupt" or "unreadable MIDI".
    import mido
    import pretty_midi

    from biax_keras.data import readers

    error = readers._FileTimeout if raised == "timeout" else MemoryError
    monkeypatch.setattr(readers, "_worker_timeout_s", 5)
    path = tmp_path / "piece.mid"
    path.write_bytes(midi_bytes([(60, 0, 2), (64, 2, 4)]))
    settings = (4, rep.DEFAULT_LOWEST_PITCH, rep.DEFAULT_NUM_NOTES, rep.DEFAULT_MAX_STEPS)

    class Parser(pretty_midi.PrettyMIDI):
        def __init__(self, *args, **kwargs):
            raise error()

    with monkeypatch.context() as patch:
        patch.setattr(pretty_midi, "PrettyMIDI", Parser)
        assert readers._read_task((0, "piece", "midi", str(path)), settings)[2] == reason

    def corrupt(*args, **kwargs):
        raise error()

    with monkeypatch.context() as patch:
        patch.setattr(mido, "MidiFile", corrupt)
        assert readers._read_task((0, "piece", "midi", str(path)), settings)[2] == reason
