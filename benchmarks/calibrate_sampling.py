"""Search the sampling controls that make a model's samples look like its collection.

    .venv/bin/python benchmarks/calibrate_sampling.py piano_midi_de
    .venv/bin/python benchmarks/calibrate_sampling.py piano_midi_de --write

For each setting of a small grid (temperature x conservativity x adaptive),
8 pieces of 120 steps (60 s at 120 bpm at eighth notes) are composed with
seed 100 -- not the seed 1 that benchmarks/against_collection.py measures
with, so the figures it reports are not the ones tuned on -- and compared
with the valid split of the model's collection: note onsets and notes
sounding per step (ratios), silent steps, and the KLs of pitch classes in key
and of vertical intervals (see `biax_keras.generation.calibration`). A
Markdown table is printed, best first, and the results go to
benchmarks/results/calibration-NAME[-LABEL]-DATE.json. With --write, the
best setting (fewest figures outside their bounds, then the nearest)
becomes the model's own defaults (`model.sampling` of its config, which
`biax generate`, the studio and an export use; for a style model, the
style's own, `model.style_sampling`), written into the model in place --
if it has fewer figures outside than the neutral controls (temperature 1, conservativity 1, not adaptive, which the
grid must then hold); otherwise nothing is written (exit 2).
"""

import argparse
import datetime
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
FILES = {"piano_midi_de": ("polyphonic/piano-midi-de.json", 2),
         "musedata": ("polyphonic/musedata.json", 2),
         "nottingham": ("polyphonic/nottingham.json", 2),
         "jsb_chorales": ("jsb/jsb-chorales-quarter.json", 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(FILES))
    parser.add_argument("--model-path", type=Path, default=None,
                        help="the model to calibrate (default: saved_models/MODEL)")
    parser.add_argument("--style", default=None,
                        help="with a style model: the style (or NAME=W,... blend) to compose "
                             "in (default: MODEL, the collection's own style)")
    parser.add_argument("--write", action="store_true",
                        help="make the best setting the model's own defaults")
    parser.add_argument("--temperatures", default=None, metavar="T,T,...",
                        help="the temperatures to try (default: 1,1.1,1.2,1.3)")
    parser.add_argument("--conservativities", default=None, metavar="C,C,...",
                        help="the conservativities to try (default: 1,0.9,0.8)")
    parser.add_argument("--adaptive", default=None, choices=["no", "yes", "both"],
                        help="adaptive conservativity off, on or both (default: both)")
    parser.add_argument("--samples", type=int, default=None,
                        help="pieces composed per setting (default: 8)")
    parser.add_argument("--label", default=None,
                        help="added to the results' file name (calibration-MODEL-LABEL-DATE.json)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import biax_keras
    from biax_keras.generation import calibration
    from biax_keras.music import jsb

    path = args.model_path or ROOT / "saved_models" / args.model
    model = biax_keras.load_model(path)
    config = model.config
    file, steps_per_quarter = FILES[args.model]
    if config.steps_per_quarter > steps_per_quarter:
        # A model on a finer grid (the style model's JSB chorales at eighth notes)
        # is compared with the pieces written on its grid, each step repeated.
        from biax_keras.music import representation

        times = config.steps_per_quarter // steps_per_quarter
        valid = jsb.on_finer_grid({"valid": jsb.read(SHARED / file)["valid"]}, times)["valid"]
        reference = [representation.pitch_sets_to_roll(
            steps, config.steps_per_quarter, config.lowest_pitch, config.num_notes).roll
            for steps in valid]
    else:
        pieces, _ = jsb.rolls(SHARED / file, "valid", steps_per_quarter, config.lowest_pitch,
                              config.num_notes)
        reference = [roll for _, roll, _ in pieces]
    style = (args.style or args.model) if config.styles else None
    def numbers(text, default):
        return default if text is None else tuple(float(v) for v in text.split(","))

    adaptive = {"no": (False,), "yes": (True,), "both": (False, True), None: (False, True)}
    rows = calibration.search(model, reference, calibration.grid(
        numbers(args.temperatures, calibration.TEMPERATURES),
        numbers(args.conservativities, calibration.CONSERVATIVITIES), adaptive[args.adaptive]),
        samples=args.samples or calibration.SAMPLES, style=style)
    print(calibration.table(rows))
    date = datetime.date.today().isoformat()
    label = f"-{args.label}" if args.label else ""
    out = args.results / f"calibration-{args.model}{label}-{date}.json"
    out.write_text(json.dumps({"model": args.model, "path": str(path), "style": style,
                               "rows": rows},
                              indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    if args.write:
        best = rows[0]
        neutral = [row for row in rows if row["controls"] == {
            "temperature": 1.0, "conservativity": 1.0, "adaptive": False}]
        if neutral and len(best["outside"]) >= len(neutral[0]["outside"]):
            sys.exit("no setting brings more figures within their bounds than the neutral "
                     "controls; the model's defaults are left as they are")
        if style is not None and "=" in style:
            sys.exit("--write gives one style its controls; a blend has none of its own")
        calibration.write_defaults(path, best["controls"], style=style)
        still = ", ".join(best["outside"]) or "none"
        whose = f"its {style} style's" if style else "its"
        print(f"{path}: {whose} own sampling defaults are now {best['controls']} "
              f"(figures still outside their bounds: {still})", file=sys.stderr)


if __name__ == "__main__":
    main()
