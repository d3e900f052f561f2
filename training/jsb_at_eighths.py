"""The JSB Chorales at eighth notes, for training beside collections on that grid.

    .venv/bin/python training/jsb_at_eighths.py ../shared/data/polyphonic/jsb-chorales-quarter.json data/jsb-chorales-8th.json

Each quarter-note step of the Boulanger-Lewandowski file is written twice:
the same music on a grid twice as fine (a play-only roll holds a note over
both steps, as it held it over one). The style model trains every
collection at eighth notes, the grid of MuseData, Nottingham and
Piano-midi.de. A model's frame NLL on this file, summed over the two steps
of each quarter, is the NLL of the quarter-note piece (the doubled piece is
one of the pieces the model could compose), so twice its per-step figure is
comparable with the quarter-note benchmark (BENCHMARKS.md, "One model, four
styles"). The file is written to a temporary name and renamed; an existing
file is kept unless --overwrite is given.
"""

import argparse
import json
import os
import sys

from biax_keras.music import jsb


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="the quarter-note JSB-format .json")
    parser.add_argument("out", help="the eighth-note .json to write (its name should say 8th)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    if os.path.exists(args.out) and not args.overwrite:
        sys.exit(f"{args.out} already exists; add --overwrite to replace it")
    with open(args.source) as f:
        splits = json.load(f)
    doubled = jsb.on_finer_grid(splits, 2)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = f"{args.out}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(doubled, f)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: " + ", ".join(f"{split} {len(p)} pieces"
                                           for split, p in doubled.items()))


if __name__ == "__main__":
    main()
