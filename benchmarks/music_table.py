"""Render the music-statistics table of BENCHMARKS.md from music_quality.sh results.

    python benchmarks/music_table.py LABEL=STATS_JSON[,COPY_JSON] ...

Each argument is a column pair (generated, reference) labelled LABEL; the
statistics come from STATS_JSON (a held-out reference split) and the copy
check from COPY_JSON (the train split; STATS_JSON's when not given).
"""

import json
import statistics
import sys

ROWS = (
    ("pieces", lambda s: f"{s['pieces']}"),
    ("steps", lambda s: f"{s['steps']:,}"),
    ("notes sounding per step", lambda s: f"{s['polyphony_mean']:.2f}"),
    ("silent steps", lambda s: f"{100 * s['silent_share']:.1f}%"),
    ("mean pitch range (semitones)", lambda s: f"{s['pitch_range_mean']:.1f}"),
    ("mean note length (16ths)", lambda s: f"{s['note_length_mean']:.2f}"),
    ("notes in key", lambda s: f"{100 * s['in_scale_share']:.1f}%"),
)
COMPARISONS = (
    ("KL pitch classes (nats)", "pitch_class_kl"),
    ("KL note lengths (nats)", "note_length_kl"),
    ("KL polyphony (nats)", "polyphony_kl"),
)


def _load(path):
    with open(path) as f:
        return json.load(f)


def table(columns):
    """Markdown lines for `[(label, stats_report, copy_report)]`."""
    lines = ["| |" + "".join(f" {label}: generated | {label}: reference |"
                             for label, _, _ in columns),
             "|---|" + "---|---|" * len(columns)]
    for name, cell in ROWS:
        row = f"| {name} |"
        for _, stats, _ in columns:
            row += f" {cell(stats['generated'])} | {cell(stats['reference'])} |"
        lines.append(row)
    for name, key in COMPARISONS:
        row = f"| {name} |"
        for _, stats, _ in columns:
            row += f" {stats['comparison'][key]:.3f} | |"
        lines.append(row)
    row_long, row_median = "| copy check vs train: longest (steps) |", "| copy check vs train: median (steps) |"
    for _, _, copy in columns:
        check = copy["comparison"]["copy"]
        row_long += f" {check['steps']} ({check['bars']:.2f} bars) | |"
        row_median += f" {statistics.median(check['per_piece_steps']):g} | |"
    lines += [row_long, row_median]
    return lines


def main(argv):
    columns = []
    for argument in argv:
        label, _, paths = argument.partition("=")
        stats_path, _, copy_path = paths.partition(",")
        stats = _load(stats_path)
        columns.append((label, stats, _load(copy_path) if copy_path else stats))
    print("\n".join(table(columns)))


if __name__ == "__main__":
    main(sys.argv[1:])
