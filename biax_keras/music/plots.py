"""The histograms of `statistics.set_statistics` for two sets, drawn side by
side into a PNG (`biax evaluate --generated ... --plot FILE.png`).
"""

import os

import numpy as np

from biax_keras.errors import UserError


def plot_comparison(generated_stats, reference_stats, path, labels=("generated", "reference")):
    """Draws the pitch-class, note-length and polyphony histograms side by side.

    Args:
        generated_stats, reference_stats: dicts from `set_statistics`.
        path: the PNG file to write (its folder is created; written to a
            temporary file, then renamed, with the permissions of any new file).
        labels: legend names of the two sets.

    Raises:
        UserError: if the folder of `path` cannot be made (a file is in the way).
    """
    # The Figure API draws without pyplot, so no global backend is switched
    # and no window opens; PNG output goes through Agg.
    from matplotlib.figure import Figure

    from biax_keras.files import write_atomic

    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"cannot write {path}: a file is in the way of its folder {folder}") from None
    figure = Figure(figsize=(15, 4.5), layout="constrained")
    axes = figure.subplots(1, 3)
    panels = (("pitch_class_histogram", "pitch class of onsets", "share of notes"),
              ("note_length_histogram", "note length (steps)", "share of notes"),
              ("polyphony_histogram", "notes sounding", "share of steps"))
    width = 0.4
    for ax, (key, title, ylabel) in zip(axes, panels):
        bins = generated_stats[key]["bins"]
        x = np.arange(len(bins))
        ax.bar(x - width / 2, generated_stats[key]["shares"], width, label=labels[0])
        ax.bar(x + width / 2, reference_stats[key]["shares"], width, label=labels[1])
        ax.set_xticks(x, bins)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
    axes[0].legend()
    write_atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
