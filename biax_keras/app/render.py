"""`biax render`: MIDI files to WAV and piano-roll PNG, and `--compare`.

    biax render out/demo.mid --to wav --to png    # out/demo.wav and out/demo.png
    biax render out/quality --to png --out-dir pictures
    biax render chorale.mid sample.mid --compare  # chorale_vs_sample.png, one above the other

Every file is first read through `representation.midi_to_roll`, with its
bounds on length and memory (`music.midi_files`), so a corrupt or absurd
file is skipped with its reason and the batch goes on.
"""

import os

from biax_keras.errors import UserError
from biax_keras.music.audio import (
    WAV_SAMPLE_RATE,
    check_audio,
    choose_synth,
    render_wav,
)
from biax_keras.music.midi_files import midi_files, read_rolls
from biax_keras.music.pictures import (
    PNG_STEPS_PER_QUARTER,
    render_png,
    roll_image,
    save_png,
)

FORMATS = ("wav", "png")


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

    stems = dict(jobs)
    pieces, skipped = read_rolls(stems, PNG_STEPS_PER_QUARTER, warn=False)
    written = []
    for midi, roll, beat in pieces:
        stem = stems[midi]
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
    for path in paths:
        if os.path.isdir(path):
            raise UserError(f"--compare takes MIDI files, and {path} is a folder")
        if not os.path.exists(path):
            raise UserError(f"{path} does not exist; give MIDI files to compare")
    pieces, skipped = read_rolls(paths, PNG_STEPS_PER_QUARTER, warn=False)
    if skipped:
        raise UserError(f"cannot compare {skipped[0]['path']}: {skipped[0]['reason']}")
    rolls, beats = [roll for _, roll, _ in pieces], [beat for _, _, beat in pieces]
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
    if not os.path.exists(path):
        raise UserError(f"{path} does not exist; give MIDI files or folders of them")
    found = midi_files(path)
    if not found:
        raise UserError(f"no MIDI files (.mid, .midi, .kar) in {path}")
    return found
