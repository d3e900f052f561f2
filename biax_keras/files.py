"""Writing outputs safely: a file appears whole under its name, or not at all."""

import os
import tempfile


def umask():
    """The process's file-creation mask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path, write, suffix=".tmp"):
    """Call `write(tmp)` on a temporary file beside `path`, then rename it to `path`.

    The file gets the mode a plain `open` would give it (not mkstemp's 0600);
    on any failure the temporary file is removed and `path` is left as it was.
    `suffix` ends the temporary name, for writers that insist on one (Keras
    saves only to names ending in .keras).
    """
    path = os.path.abspath(os.fspath(path))
    handle, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=suffix,
                                   dir=os.path.dirname(path))
    os.close(handle)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
