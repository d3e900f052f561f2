"""Where do a model's samples thin out? Its expected density under teacher forcing and free running.

    .venv/bin/python benchmarks/thinning.py piano_midi_de [--samples 8] [--seconds 120]

For a benchmark model and the valid split of its collection:

- teacher forcing: on every valid piece, the notes the model expects to
  sound at each step (the sum of P(play) over the keys, given the true
  past) against the notes that do sound;
- free running: on pieces it composed with default settings, the same sum
  given its own past (scoring a sample under teacher forcing gives exactly
  the probabilities it was drawn from, at temperature 1 and conservativity
  1) against what it played;

each split into quarters of the pieces' length (first quarter to last), so
that a drift shows as a fall from quarter to quarter, and a bias that is
there from the first bar as a gap in every quarter. Writes
benchmarks/results/thinning-NAME-DATE.json and prints a Markdown table.
"""

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
FILES = {"piano_midi_de": "polyphonic/piano-midi-de.json", "musedata": "polyphonic/musedata.json",
         "nottingham": "polyphonic/nottingham.json", "jsb_chorales": "jsb/jsb-chorales-quarter.json"}
QUARTERS = 4


def by_quarter(values_per_piece):
    """Means of per-step values over each quarter of every piece, pooled."""
    sums, counts = np.zeros(QUARTERS), np.zeros(QUARTERS)
    for values in values_per_piece:
        edges = np.linspace(0, len(values), QUARTERS + 1).astype(int)
        for q in range(QUARTERS):
            part = values[edges[q]:edges[q + 1]]
            sums[q] += part.sum()
            counts[q] += len(part)
    return (sums / np.maximum(counts, 1)).round(3).tolist()


def expected_and_actual(model, rolls):
    """Per piece: the sum over keys of P(play) at each step, and the notes sounding."""
    from biax_keras.app import evaluate

    expected, actual = [], []
    from biax_keras.music import representation

    for roll in rolls:
        # 4/4 from the first step: what the JSB files' pieces are given in
        # training, and what the sampler gives new music.
        beat = representation.bar_positions(len(roll), model.config.steps_per_quarter)
        inputs = {"roll": evaluate.previous_steps(roll)[None].astype(np.float32),
                  "beat": beat[None].astype(np.int32),
                  "target": roll[None].astype(np.float32)}
        p = np.asarray(model(inputs, training=False))[0, ..., 0]
        expected.append(p.sum(axis=1))
        actual.append(roll[..., 0].sum(axis=1).astype(np.float64))
    return expected, actual


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(FILES))
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    import biax_keras
    from biax_keras.generation.sampling import steps_for_seconds
    from biax_keras.music import jsb

    model = biax_keras.load_model(ROOT / "saved_models" / args.model)
    config = model.config
    pieces, _ = jsb.rolls(SHARED / FILES[args.model], "valid", config.steps_per_quarter,
                          config.lowest_pitch, config.num_notes)
    valid = [roll for _, roll, _ in pieces]
    steps = steps_for_seconds(args.seconds, 120.0, config.steps_per_quarter)
    samples = biax_keras.generate_batch(model, args.samples, steps, seed=args.seed)
    sampled = [np.asarray(s) for s in samples]

    forced_expected, forced_actual = expected_and_actual(model, valid)
    free_expected, free_actual = expected_and_actual(model, sampled)
    result = {
        "model": args.model,
        "date": datetime.date.today().isoformat(),
        "valid_pieces": len(valid),
        "samples": args.samples, "steps": steps, "seed": args.seed,
        "teacher_forced": {"expected_sounding": by_quarter(forced_expected),
                           "sounding": by_quarter(forced_actual)},
        "free_running": {"expected_sounding": by_quarter(free_expected),
                         "sounding": by_quarter(free_actual)},
    }
    out = ROOT / "benchmarks" / "results" / f"thinning-{args.model}-{result['date']}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| {args.model} | quarter 1 | 2 | 3 | 4 |")
    print("|---|---|---|---|---|")
    for label, part, key in (("valid: notes sounding", "teacher_forced", "sounding"),
                             ("valid: expected by the model (true past)", "teacher_forced",
                              "expected_sounding"),
                             ("samples: notes sounding", "free_running", "sounding"),
                             ("samples: expected by the model (own past)", "free_running",
                              "expected_sounding")):
        print(f"| {label} | " + " | ".join(f"{v:.2f}" for v in result[part][key]) + " |")
    print(f"wrote {out.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
