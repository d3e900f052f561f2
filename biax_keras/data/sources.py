"""What `biax prepare` can read, listed as tasks: a MIDI folder or file, a
TFRecord of NoteSequences, `bach` (music21's chorales) or a JSB-format
JSON/pickle (which brings its own split and no articulation).

`_find_source(source, limit)` returns a `_Source`: the tasks `(index, name,
kind, payload)` for the readers, its own split if it has one, and what was
skipped while listing.
"""

import logging
from pathlib import Path


from biax_keras.data import records
from biax_keras.data.music21_corpus import bach_chorale_paths
from biax_keras.errors import UserError
from biax_keras.music import jsb, representation
from biax_keras.music.midi_files import midi_files

log = logging.getLogger(__name__)


BACH = "bach"
MIDI_SUFFIXES = representation.MIDI_SUFFIXES
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords")
JSON_SUFFIXES, PICKLE_SUFFIXES = records.JSON_SUFFIXES, records.PICKLE_SUFFIXES
# The JSB format (Boulanger-Lewandowski 2012) holds MIDI pitches of the 88 piano keys.
JSB_LOWEST_PITCH, JSB_NUM_NOTES = jsb.LOWEST_PITCH, jsb.NUM_NOTES
JSB_HIGHEST_PITCH = jsb.HIGHEST_PITCH


class _Source:
    """What to read: tasks `(index, name, kind, payload)` and how to split them."""

    def __init__(self, label, tasks, own_split=None, play_only=False, skipped=(),
                 parallel=True):
        self.label = label
        self.parallel = parallel  # worth worker processes (parsing, not just copying)
        self.tasks = tasks
        self.own_split = own_split  # name -> split, or None to split by seed
        self.play_only = play_only
        self.skipped = list(skipped)  # found while listing: [{"path", "reason"}]


def _sniff(path):
    """Guess what a file is from its suffix, then from its first bytes."""
    suffix = path.suffix.lower()
    for kind, suffixes in (("midi", MIDI_SUFFIXES), ("tfrecord", TFRECORD_SUFFIXES),
                           ("json", JSON_SUFFIXES), ("pickle", PICKLE_SUFFIXES)):
        if suffix in suffixes:
            return kind
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:4] == b"MThd":
        return "midi"
    if head.lstrip()[:1] == b"{":
        return "json"
    if head[:1] == b"\x80":
        return "pickle"
    if len(head) >= 12 and int.from_bytes(head[:8], "little") + 16 <= path.stat().st_size:
        return "tfrecord"  # the length field of a first record fits the file
    return None


def _midi_folder(folder):
    files = midi_files(folder)
    if not files:
        raise UserError(f"no MIDI files (.mid/.midi) under {folder}")
    tasks = [(i, p, "midi", p) for i, p in enumerate(files)]
    return _Source(str(folder), tasks)


def _bach(limit):
    paths = bach_chorale_paths()
    names = sorted(paths)[:limit] if limit else sorted(paths)
    tasks = [(i, name, "music21", str(paths[name])) for i, name in enumerate(names) if paths[name]]
    missing = [{"path": name, "reason": "not found in music21's corpus"}
               for name in names if not paths[name]]
    return _Source(BACH, tasks, skipped=missing)


def _jsb(path, kind):
    tasks, own_split = [], {}
    for split, pieces in jsb.read(path, kind).items():
        for number, steps in enumerate(pieces):
            name = f"{path}:{split}/{number}"
            tasks.append((len(tasks), name, "pitch_sets", steps))
            own_split[name] = split
    return _Source(str(path), tasks, own_split=own_split, play_only=True, parallel=False)


def _note_sequence_records(path):
    import tensorflow as tf

    tasks = []
    try:
        for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            tasks.append((len(tasks), f"{path}#{len(tasks)}", "note_sequence", record))
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        if not tasks:
            raise UserError(f"{path} is not a TFRecord file ({e.message.splitlines()[0]})") from None
        log.warning("%s: stopped at a corrupt record after %d records", path, len(tasks))
        return _Source(str(path), tasks, skipped=[
            {"path": f"{path}#{len(tasks)}", "reason": "corrupt TFRecord; the rest of the file is lost"}])
    return _Source(str(path), tasks)


def _find_source(source, limit):
    if str(source) == BACH:
        return _bach(limit)
    path = Path(source)
    if not path.exists():
        raise UserError(
            f"{source} does not exist (give a MIDI folder or file, a .tfrecord of "
            f"NoteSequences, a JSB .json/.pickle, or `bach`)")
    if path.is_dir():
        found = _midi_folder(path)
    else:
        kind = _sniff(path)
        if kind == "midi":
            found = _Source(str(path), [(0, str(path), "midi", str(path))])
        elif kind == "tfrecord":
            found = _note_sequence_records(path)
        elif kind in ("json", "pickle"):
            found = _jsb(path, kind)
        else:
            raise UserError(f"{source} is neither MIDI, a TFRecord of NoteSequences, "
                            f"nor a JSB .json/.pickle file")
    if limit:
        found.tasks = found.tasks[:limit]
    if not found.tasks:
        raise UserError(f"{source} holds no pieces")
    return found


def _is_jsb(source):
    """Whether `biax prepare` reads `source` as a JSB-format file."""
    path = Path(str(source))
    return (str(source) != BACH and path.is_file()
            and _sniff(path) in ("json", "pickle"))
