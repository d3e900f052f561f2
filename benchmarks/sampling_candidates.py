"""Density of a benchmark model's samples under candidate sampling settings, against its collection.

    .venv/bin/python benchmarks/sampling_candidates.py piano_midi_de

8 pieces of 120 steps (60 s at 120 bpm at 8th notes), seed 1, for each
setting: the neutral controls (temperature 1), lower conservativity, --adaptive, a higher
temperature, and continuations of the first 8 bars of 8 valid pieces (the
continuation alone measured). Prints a Markdown table of note onsets and
notes sounding per step (ratio to the valid split) and silent steps, and
writes benchmarks/results/sampling-candidates-NAME-DATE.json.
"""

import datetime
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = {"piano_midi_de": "polyphonic/piano-midi-de.json", "musedata": "polyphonic/musedata.json",
         "nottingham": "polyphonic/nottingham.json"}
PRIMER_STEPS, SAMPLES, STEPS, SEED = 64, 8, 120, 1


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else "piano_midi_de"
    if name not in FILES:
        sys.exit(f"one of {', '.join(FILES)}")
    sys.path.insert(0, str(ROOT))
    import biax_keras
    from biax_keras.sampling_controls import SamplingControls
    from biax_keras.music import jsb, statistics

    model = biax_keras.load_model(ROOT / "saved_models" / name)
    config = model.config
    pieces, _ = jsb.rolls(ROOT.parent / "shared" / "data" / FILES[name], "valid",
                          config.steps_per_quarter, config.lowest_pitch, config.num_notes)
    reference = statistics.set_statistics([roll for _, roll, _ in pieces], config.lowest_pitch)
    rows = {}
    for label, controls in [("temperature 1 (neutral)", SamplingControls()),
                            ("conservativity 0.7", SamplingControls(conservativity=0.7)),
                            ("adaptive", SamplingControls(adaptive=True)),
                            ("temperature 1.2", SamplingControls(temperature=1.2))]:
        rolls = biax_keras.generate_batch(model, SAMPLES, STEPS, seed=SEED, controls=controls)
        rows[label] = statistics.set_statistics(list(rolls), config.lowest_pitch)
    continuations = [
        biax_keras.generate(model, STEPS, seed=SEED,
                            primer=(roll[:PRIMER_STEPS], beat[:PRIMER_STEPS]))[PRIMER_STEPS:]
        for _, roll, beat in pieces[:SAMPLES] if len(roll) >= PRIMER_STEPS]
    rows["primed with 8 bars of a valid piece"] = statistics.set_statistics(
        continuations, config.lowest_pitch)

    print(f"| {name} | onsets per step | notes sounding per step | silent steps |")
    print("|---|---|---|---|")
    print(f"| collection (valid) | {reference['onsets_per_step']:.2f} | "
          f"{reference['polyphony_mean']:.2f} | {100 * reference['silent_share']:.0f}% |")
    for label, stats in rows.items():
        print(f"| {label} | {stats['onsets_per_step']:.2f} "
              f"(x{stats['onsets_per_step'] / reference['onsets_per_step']:.2f}) | "
              f"{stats['polyphony_mean']:.2f} "
              f"(x{stats['polyphony_mean'] / reference['polyphony_mean']:.2f}) | "
              f"{100 * stats['silent_share']:.0f}% |")
    date = datetime.date.today().isoformat()
    keep = ("onsets_per_step", "polyphony_mean", "silent_share", "pieces", "steps")
    out = ROOT / "benchmarks" / "results" / f"sampling-candidates-{name}-{date}.json"
    out.write_text(json.dumps({
        "model": name, "date": date, "samples": SAMPLES, "steps": STEPS, "seed": SEED,
        "collection": {k: reference[k] for k in keep},
        "settings": {label: {k: stats[k] for k in keep} for label, stats in rows.items()},
    }, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
