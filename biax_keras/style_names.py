"""The names of styles: what a style may be called, and the name a source gives it.

Used by `biax prepare` (a prepared dataset's style), by the model config
(`BiaxialConfig.styles`) and by `--style` when composing; plain Python, so
every stage may import it.
"""

from biax_keras.errors import UserError

STYLE_NAME_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789_-."


def check_style_name(name):
    """A style's name: lower-case letters, digits, `_`, `-`, `.` (so `name=0.7,other=0.3` reads).

    Raises:
        UserError: naming the style and what it may hold.
    """
    if not isinstance(name, str) or not name or any(c not in STYLE_NAME_CHARACTERS for c in name):
        raise UserError(f"style name {name!r} must be lower-case letters, digits, '_', '-' or '.'")
    return name


def style_name_of(text):
    """A style's name made from a file's or folder's name: `Piano-midi.de.json` -> `piano-midi.de`."""
    import os

    stem = os.path.basename(os.path.normpath(os.fspath(text)))
    for suffix in (".json", ".pickle", ".pkl", ".tfrecord"):
        if stem.lower().endswith(suffix):
            stem = stem[:-len(suffix)]
    name = "".join(c if c in STYLE_NAME_CHARACTERS else "_" for c in stem.lower()).strip("_")
    return name or "style"
