"""Do a model's samples look like the collection it learned?

    .venv/bin/python benchmarks/against_collection.py                 # every shipped model
    .venv/bin/python benchmarks/against_collection.py piano_midi_de nottingham

For each model: 8 pieces of 60 s composed with `biax generate`'s default
settings (only --model, --out, --seconds, --seed 1 and --num-samples given),
compared by `biax evaluate --generated ... --reference ...` with the valid
split of its collection: the benchmark models with their JSON file in
DATA_DIR (default ../shared/data/polyphonic; the JSB model with
../shared/data/jsb/jsb-chorales-quarter.json), the Bach model with the valid
split of music21's chorales (`biax prepare bach`, written out as MIDI). The
results go to benchmarks/results/against-collection-NAME-DATE.json and a
table of the figures and their bounds is printed (Markdown).

With --continuation, each model instead continues the first 8 bars of 8
valid pieces of its collection (`biax generate --primer BARS.mid --only-new
--seconds 60 --seed 1`, again default settings), and the 60 s after the
primer are compared with the collection the same way:
benchmarks/results/against-collection-NAME-continuation-DATE.json.

With --model-path PATH --style STYLE --label LABEL, another model (a style
model, in one of its styles or a blend) is measured against collection NAME
the same way: against-collection-NAME-LABEL-DATE.json. A model on a finer
grid than the collection's file (the style model's JSB chorales, at eighth
notes) is compared with the file's pieces on its grid, each step repeated.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIAX = [sys.executable, "-m", "biax_keras"]
SHARED = ROOT.parent / "shared" / "data"
# model -> (reference file or "bach", steps per quarter of the reading)
REFERENCES = {
    "piano_midi_de": ("polyphonic/piano-midi-de.json", 2),
    "musedata": ("polyphonic/musedata.json", 2),
    "nottingham": ("polyphonic/nottingham.json", 2),
    "jsb_chorales": ("jsb/jsb-chorales-quarter.json", 1),
    "bach": ("bach", 4),
}
SAMPLES, SECONDS, SEED = 8, 60, 1
# Another model than saved_models/NAME (--model-path), composing in a style (--style).
MODEL = {}
PRIMER_BARS = 8


def run(*argv, **kwargs):
    done = subprocess.run([*BIAX, *map(str, argv)], capture_output=True, text=True, cwd=ROOT,
                          **kwargs)
    if done.returncode != 0:
        sys.exit(f"biax {' '.join(map(str, argv))} failed: {done.stderr.strip()[-800:]}")
    return done.stdout


def bach_reference(folder):
    """The valid split of music21's chorales, as MIDI files in `folder`."""
    from biax_keras import data
    from biax_keras.music import representation

    folder.mkdir(parents=True, exist_ok=True)
    prepared = ROOT / "data" / "bach"
    if not (prepared / "meta.json").is_file():
        run("prepare", "bach", "--out", prepared)
    meta = data.load_meta(prepared)
    for index, (_, roll, _) in enumerate(data.read_pieces(prepared, "valid")):
        representation.roll_to_midi(roll, folder / f"{index:03d}.mid",
                                    steps_per_quarter=meta["steps_per_quarter"],
                                    lowest_pitch=meta["lowest_pitch"])
    return folder


def openings(name, folder):
    """The first `PRIMER_BARS` bars of the first `SAMPLES` valid pieces long enough, as MIDI."""
    import biax_keras
    from biax_keras import data
    from biax_keras.music import jsb, representation

    reference, steps_per_quarter = REFERENCES[name]
    config = biax_keras.model_config(MODEL.get("path") or ROOT / "saved_models" / name)
    if reference == "bach":
        prepared = ROOT / "data" / "bach"
        if not (prepared / "meta.json").is_file():
            run("prepare", "bach", "--out", prepared)
        pieces = list(data.read_pieces(prepared, "valid"))
    else:
        pieces, _ = jsb.rolls(Path(os.environ.get("DATA_DIR", SHARED)) / reference, "valid",
                              steps_per_quarter, config.lowest_pitch, config.num_notes)
    steps = PRIMER_BARS * 4 * steps_per_quarter
    folder.mkdir(parents=True)
    paths = []
    for _, roll, _ in pieces:
        if len(roll) < steps or len(paths) == SAMPLES:
            continue
        path = folder / f"opening-{len(paths) + 1}.mid"
        representation.roll_to_midi(roll[:steps], path, steps_per_quarter=steps_per_quarter,
                                    lowest_pitch=config.lowest_pitch)
        paths.append(path)
    return paths


def compose(name, generated, continuation):
    model = MODEL.get("path") or ROOT / "saved_models" / name
    style = ["--style", MODEL["style"]] if MODEL.get("style") else []
    if not continuation:
        run("generate", "--model", model, "--out", generated / "piece.mid", "--seconds", SECONDS,
            "--seed", SEED, "--num-samples", SAMPLES, *style)
        return
    for index, primer in enumerate(openings(name, generated.parent / "openings"), 1):
        run("generate", "--model", model, "--primer", primer, "--only-new",
            "--out", generated / f"piece-{index}.mid", "--seconds", SECONDS, "--seed", SEED,
            *style)


def reference_on_grid(name, scratch):
    """The collection's JSON file, and its steps per quarter, on the model's time grid.

    A model on a finer grid than the file (the style model composes the JSB
    chorales at eighth notes) is compared with the file's pieces written on
    that grid, each step repeated, as it learned them
    (training/jsb_at_eighths.py): read at the file's own grid, the model's
    off-beat onsets would be snapped away and never counted.
    """
    import biax_keras
    from biax_keras.music import jsb

    reference, steps_per_quarter = REFERENCES[name]
    source = Path(os.environ.get("DATA_DIR", SHARED)) / reference
    model_grid = biax_keras.model_config(MODEL.get("path") or ROOT / "saved_models" / name) \
        .steps_per_quarter
    if model_grid <= steps_per_quarter:  # read at the file's grid, as before
        return source, steps_per_quarter
    if model_grid % steps_per_quarter:
        sys.exit(f"{name}: the model's grid ({model_grid} steps per quarter) is not a multiple "
                 f"of the collection's ({steps_per_quarter})")
    repeat = model_grid // steps_per_quarter
    with open(source) as f:
        splits = json.load(f)
    scratch.mkdir(parents=True, exist_ok=True)
    # A name that states no resolution: the one given by --steps-per-quarter holds.
    path = scratch / "reference-on-the-model-grid.json"
    path.write_text(json.dumps(jsb.on_finer_grid(splits, repeat)))
    return path, model_grid


def measure(name, scratch, continuation=False):
    reference, steps_per_quarter = REFERENCES[name]
    generated = scratch / name / "generated"
    generated.mkdir(parents=True)
    compose(name, generated, continuation)
    if reference == "bach":
        reference_path = bach_reference(Path(scratch / name / "reference"))
        flags = ["--steps-per-quarter", steps_per_quarter]
    else:
        reference_path, steps_per_quarter = reference_on_grid(name, scratch / name)
        flags = ["--reference-split", "valid", "--steps-per-quarter", steps_per_quarter]
    result = json.loads(run("evaluate", "--generated", generated, "--reference", reference_path,
                            *flags, "--json"))
    result["model"] = name
    if MODEL.get("path"):
        result["model_path"], result["style"] = str(MODEL["path"]), MODEL.get("style")
    result["settings"] = {"samples": SAMPLES, "seconds": SECONDS, "seed": SEED,
                          "flags": "defaults"}
    if continuation:
        result["settings"]["continuation_of_bars"] = PRIMER_BARS
    return result


def table(results):
    lines = ["| model | onsets/step (ratio) | sounding/step (ratio) | silent steps, samples / "
             "collection | KL in key | KL intervals | copy (bars) | two-sample accuracy |",
             "|---|---|---|---|---|---|---|---|"]
    for result in results:
        g, r, c = result["generated"], result["reference"], result["comparison"]
        within = c["against_collection"]

        def mark(name):
            return "" if within[name]["within"] else " **out**"

        two = c["two_sample"]["accuracy"]
        lines.append(
            f"| {result['model']} "
            f"| {g['onsets_per_step']:.2f} / {r['onsets_per_step']:.2f} "
            f"(x{within['onsets_per_step_ratio']['value']:.2f}){mark('onsets_per_step_ratio')} "
            f"| {g['polyphony_mean']:.2f} / {r['polyphony_mean']:.2f} "
            f"(x{within['notes_sounding_ratio']['value']:.2f}){mark('notes_sounding_ratio')} "
            f"| {100 * g['silent_share']:.0f}% / {100 * r['silent_share']:.0f}%"
            f"{mark('silent_share_difference')} "
            f"| {c['pitch_class_in_key_kl']:.3f}{mark('pitch_class_in_key_kl')} "
            f"| {c['interval_kl']:.3f}{mark('interval_kl')} "
            f"| {c['copy']['bars']:.2f}{mark('copy_bars')} "
            f"| {'-' if two is None else f'{two:.2f}'} |")
    return "\n".join(lines)


def card_table(result):
    """The model card's table of one result (`figure | samples | collection | measure | bound |
    within`) and its two-sample and MusPy line, as the cards quote them."""
    g, r, c = result["generated"], result["reference"], result["comparison"]
    within = c["against_collection"]

    def yes(name):
        return "yes" if within[name]["within"] else "**no**"

    rows = [
        ("note onsets per step", f"{g['onsets_per_step']:.2f}", f"{r['onsets_per_step']:.2f}",
         f"{within['onsets_per_step_ratio']['value']:.2f}", "0.8-1.25x", yes("onsets_per_step_ratio")),
        ("notes sounding per step", f"{g['polyphony_mean']:.2f}", f"{r['polyphony_mean']:.2f}",
         f"{within['notes_sounding_ratio']['value']:.2f}", "0.8-1.25x", yes("notes_sounding_ratio")),
        ("silent steps", f"{100 * g['silent_share']:.1f}%", f"{100 * r['silent_share']:.1f}%",
         f"{within['silent_share_difference']['value']:.3f}", "<= 0.05",
         yes("silent_share_difference")),
        ("pitch classes in key (KL)", "", "", f"{c['pitch_class_in_key_kl']:.3f}", "< 0.05",
         yes("pitch_class_in_key_kl")),
        ("vertical intervals (KL)", "", "", f"{c['interval_kl']:.3f}", "< 0.05", yes("interval_kl")),
        ("longest copy (bars)", f"{c['copy']['bars']:.2f}", "", f"{c['copy']['bars']:.2f}", "<= 2",
         yes("copy_bars")),
    ]
    lines = ["| figure | samples | collection | measure | bound | within |",
             "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    muspy_g, muspy_r = g["muspy"], r["muspy"]
    two = c["two_sample"]["accuracy"]
    lines += ["", "A two-sample test (a logistic regression on 4-bar windows, held-out accuracy; "
              f"0.5: indistinguishable) tells the samples from the collection {two:.2f} of the "
              f"time. MusPy: empty-beat rate {muspy_g['empty_beat_rate']:.3f} (collection "
              f"{muspy_r['empty_beat_rate']:.3f}), pitch-class entropy "
              f"{muspy_g['pitch_class_entropy']:.2f} bits ({muspy_r['pitch_class_entropy']:.2f}), "
              f"scale consistency {muspy_g['scale_consistency']:.3f} "
              f"({muspy_r['scale_consistency']:.3f})."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(REFERENCES))
    parser.add_argument("--continuation", action="store_true",
                        help=f"continue the first {PRIMER_BARS} bars of valid pieces instead")
    parser.add_argument("--model-path", type=Path, default=None,
                        help="measure this model against the named collection instead of "
                             "saved_models/NAME (e.g. a style model)")
    parser.add_argument("--style", default=None,
                        help="with --model-path: the style (or NAME=W,... blend) to compose in")
    parser.add_argument("--label", default=None,
                        help="added to the results' names: against-collection-NAME-LABEL-DATE.json")
    parser.add_argument("--card", action="store_true",
                        help="print each model's card table from its newest recorded result "
                             "(nothing is composed)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results",
                        help="where the JSON files go")
    args = parser.parse_args()
    unknown = [m for m in args.models if m not in REFERENCES]
    if unknown:
        sys.exit(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(REFERENCES)}")
    if args.card:
        from benchmarks.recorded import newest

        kind = "-continuation" if args.continuation else ""
        for name in args.models:
            path = newest(f"against-collection-{name}{kind}", args.results)
            print(f"{name}: {path.relative_to(ROOT) if path else 'no recorded result'}\n")
            if path:
                print(card_table(json.loads(path.read_text())) + "\n")
        return
    if args.style and not args.model_path:
        sys.exit("--style goes with --model-path (a style model)")
    MODEL.update(path=args.model_path, style=args.style)
    date = datetime.date.today().isoformat()
    results = []
    with tempfile.TemporaryDirectory(prefix="against-collection-") as scratch:
        for name in args.models:
            result = measure(name, Path(scratch), args.continuation)
            kind = ("-continuation" if args.continuation else "") + (
                f"-{args.label}" if args.label else "")
            out = args.results / f"against-collection-{name}{kind}-{date}.json"
            out.write_text(json.dumps(result, indent=2) + "\n")
            results.append(result)
            print(f"{name}: wrote {out}", file=sys.stderr)
    print(table(results))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
