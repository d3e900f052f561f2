#!/usr/bin/env python3
"""The ablation table: the quality recipe with one change at a time, over seeds.

    python benchmarks/ablation.py                                  # JSB, every variant, seeds 0 1 2
    python benchmarks/ablation.py --variants base,ema --seeds 0,1,2
    python benchmarks/ablation.py --collect                        # only the table of what is done

Each (variant, seed) is one run of benchmarks/quality.sh (prepare once,
train with early stopping on valid, score valid on whole pieces) with the
dataset's config changed as benchmarks/ablations.json says, in its own folder
RUNS/DATASET/VARIANT-seedN. Running the command again resumes unfinished runs
and skips finished ones, so the table fills in over as many sittings as it
takes. The table (median and best over seeds of the valid frame NLL, and the
median's difference from the base recipe) is printed as Markdown and written
to benchmarks/results/ablation-DATASET-DATE.json. It holds every variant of
the variants file with every seed finished under RUNS/DATASET, whichever of
them this call was asked to train: a call that trains one variant never
narrows the table. Seeds scored before and recorded in the newest
benchmarks/results/ablation-DATASET-DATE.json (or --recorded) stay in the
table when their run folders are gone, say on a new machine; a seed whose run
folder is here is read from the folder.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.recorded import newest  # noqa: E402
RECIPE = ROOT / "benchmarks" / "quality.sh"
VARIANTS = ROOT / "benchmarks" / "ablations.json"
# The config quality.sh trains each dataset with.
CONFIGS = {"jsb_chorales": "jsb", "musedata": "musedata", "nottingham": "nottingham",
           "piano_midi_de": "piano_midi_de"}


def fail(message):
    print(f"ablation: {message}", file=sys.stderr)
    sys.exit(2)


def _write_text(path, text):
    """`path` holds `text` whole, or what it held before (a temporary file renamed)."""
    from biax_keras.files import write_atomic

    write_atomic(path, lambda tmp: Path(tmp).write_text(text))


def variant_config(base, variant):
    """`base` (a run config dict) with the variant's model and train keys replaced."""
    config = {"model": dict(base.get("model", {})), "train": dict(base.get("train", {}))}
    for section in ("model", "train"):
        config[section].update(variant.get(section, {}))
    return config


def run_folder(runs, dataset, name, seed):
    return Path(runs) / dataset / f"{name}-seed{seed}"


def latest_result(folder, split="valid"):
    """The newest `quality-*-<split>-*.json` quality.sh wrote in `folder`/results, or None."""
    found = sorted((folder / "results").glob(f"quality-*-{split}-*.json"))
    return json.loads(found[-1].read_text()) if found else None


def history_epochs(run):
    """`(epochs trained, best epoch counted from 1)` from the run's history.csv."""
    from biax_keras.train import runs

    history = runs.valid_history(run)
    return (max(history) + 1 if history else None), runs.best_epoch(run)[1]


def run_one(folder, dataset, config, seed, env):
    """Trains and scores one (variant, seed) with quality.sh."""
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.json"
    text = json.dumps(config, indent=2) + "\n"
    if config_path.exists() and config_path.read_text() != text:
        fail(f"{config_path} differs from the variant's config now; remove {folder} to "
             "run the variant again")
    _write_text(config_path, text)
    environment = dict(env, RUNS=str(folder), RESULTS=str(folder / "results"),
                       CONFIG=str(config_path), EXTRA_TRAIN_FLAGS=f"--seed {seed}")
    with open(folder / "recipe.log", "a") as log:
        code = subprocess.run(["bash", str(RECIPE), dataset], env=environment, stdout=log,
                              stderr=subprocess.STDOUT).returncode
    if code != 0:
        fail(f"{dataset} {folder.name} failed (exit {code}); see {folder / 'recipe.log'}")


def seeds_on_disk(runs, dataset, name):
    """The seeds with a run folder (`run_folder`) of variant `name`, in order."""
    prefix = run_folder(runs, dataset, name, "")
    pattern = re.compile(rf"{re.escape(prefix.name)}(\d+)")
    found = (pattern.fullmatch(p.name) for p in prefix.parent.glob(f"{glob.escape(prefix.name)}*"))
    return sorted(int(m.group(1)) for m in found if m)


def newest_recorded(dataset):
    """The newest benchmarks/results/ablation-DATASET-DATE.json, or None."""
    return newest(f"ablation-{dataset}")


def recorded_seeds(path, dataset):
    """variant -> {seed: score} of the table at `path` (none when `path` is None)."""
    if path is None:
        return {}
    try:
        table = json.loads(Path(path).read_text())
        if table["dataset"] != dataset:
            fail(f"{path} is the table of {table['dataset']}, not {dataset}; pass --recorded "
                 f"with {dataset}'s table or --recorded none")
        return {row["variant"]: {s["seed"]: s for s in row["seeds"]} for row in table["rows"]}
    except (OSError, ValueError, KeyError, TypeError) as error:
        fail(f"{path} is not an ablation table ({error}); pass --recorded with one written by "
             "this script, or --recorded none")


def collect(runs, dataset, variants, recorded=None):
    """One row per variant with at least one scored seed, over every scored seed.

    `recorded` (variant -> {seed: score}, as `recorded_seeds` reads it) fills in
    the seeds that have no scored run folder under `runs`."""
    from biax_keras.train.runs import training_seconds

    recorded = recorded or {}
    rows = []
    for name, variant in variants.items():
        scores = []
        for seed in seeds_on_disk(runs, dataset, name):
            folder = run_folder(runs, dataset, name, seed)
            result = latest_result(folder)
            if result is None:
                continue
            epochs, best_epoch = history_epochs(folder / dataset)
            train = latest_result(folder, "train")
            scores.append({
                "seed": seed, "valid_frame_nll": result["frame_nll"],
                "train_frame_nll": train["frame_nll"] if train else None,
                "valid_accuracy": result["accuracy"], "epochs": epochs, "best_epoch": best_epoch,
                "seconds": training_seconds(folder / dataset),
            })
        on_disk = {s["seed"] for s in scores}
        scores += [s for seed, s in recorded.get(name, {}).items() if seed not in on_disk]
        scores.sort(key=lambda s: s["seed"])
        if scores:
            nll = [s["valid_frame_nll"] for s in scores]
            rows.append({"variant": name, "change": variant.get("change", ""), "seeds": scores,
                         "median": statistics.median(nll), "best": min(nll)})
    base = next((r["median"] for r in rows if r["variant"] == "base"), None)
    for row in rows:
        row["delta"] = None if base is None else row["median"] - base
    return rows


def markdown(rows):
    lines = ["| variant | change | seeds | valid NLL median | best | vs base | train NLL | "
             "epochs (best) | training time |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        seeds = row["seeds"]
        epochs = statistics.median(s["epochs"] or 0 for s in seeds)
        best_epoch = statistics.median(s["best_epoch"] or 0 for s in seeds)
        seconds = [s["seconds"] for s in seeds if s["seconds"] is not None]
        train = [s["train_frame_nll"] for s in seeds if s["train_frame_nll"] is not None]
        train_text = f"{statistics.median(train):.3f}" if train else "?"
        time_text = f"{statistics.median(seconds) / 60:.0f} min" if seconds else "?"
        delta = "" if row["delta"] is None or row["variant"] == "base" else f"{row['delta']:+.3f}"
        lines.append(f"| {row['variant']} | {row['change']} | {len(seeds)} | {row['median']:.3f} | "
                     f"{row['best']:.3f} | {delta} | {train_text} | {epochs:.0f} ({best_epoch:.0f}) | "
                     f"{time_text} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="jsb_chorales", choices=sorted(CONFIGS))
    parser.add_argument("--base", metavar="CONFIG", help="the recipe's config (default: the "
                                                      "dataset's in training/configs)")
    parser.add_argument("--variants-file", default=str(VARIANTS), metavar="JSON",
                        help="variant name -> {change, model, train} (default: %(default)s)")
    parser.add_argument("--variants", help="comma-separated names from benchmarks/ablations.json "
                                           "to train (default: all of them)")
    parser.add_argument("--seeds", default="0,1,2",
                        help="comma-separated seeds to train (default: 0,1,2); the table holds "
                             "every finished seed of every variant")
    parser.add_argument("--runs", default="runs/ablation", help="folder of the runs")
    parser.add_argument("--collect", action="store_true", help="train nothing; print the table")
    parser.add_argument("--recorded", metavar="JSON", help="a table this script wrote, whose seeds "
                        "stay in the new table where their run folders are gone (default: the "
                        "newest benchmarks/results/ablation-DATASET-DATE.json; 'none': only the "
                        "runs on disk)")
    parser.add_argument("--out", help="the table's JSON (default: "
                                      "benchmarks/results/ablation-DATASET-DATE.json)")
    args = parser.parse_args(argv)

    every_variant = json.loads(Path(args.variants_file).read_text())
    variants = every_variant
    if args.variants:
        names = [n for n in args.variants.split(",") if n]
        unknown = [n for n in names if n not in every_variant]
        if unknown:
            fail(f"unknown variant {', '.join(unknown)}; choose from {', '.join(every_variant)}")
        variants = {n: every_variant[n] for n in names}
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        fail(f"--seeds takes whole numbers separated by commas, got {args.seeds!r}")
    base = json.loads(Path(args.base or ROOT / "training" / "configs" /
                           f"{CONFIGS[args.dataset]}.json").read_text())

    if args.recorded == "none":
        recorded_path = None
    elif args.recorded:
        recorded_path = Path(args.recorded)
        if not recorded_path.is_file():
            fail(f"--recorded {args.recorded}: no such file; pass a table this script wrote, "
                 "or none")
    else:
        recorded_path = newest_recorded(args.dataset)
    recorded = recorded_seeds(recorded_path, args.dataset)  # read before hours of training

    if not args.collect:
        env = dict(os.environ)
        for seed in seeds:  # every variant's first seed before any second one
            for name, variant in variants.items():
                folder = run_folder(args.runs, args.dataset, name, seed)
                if latest_result(folder) is None:
                    print(f"{args.dataset} {name} seed {seed} ...", file=sys.stderr, flush=True)
                    run_one(folder, args.dataset, variant_config(base, variant), seed, env)

    rows = collect(args.runs, args.dataset, every_variant, recorded)
    if not rows:
        fail(f"no finished runs under {args.runs}/{args.dataset}; run without --collect first")
    out = Path(args.out or ROOT / "benchmarks" / "results" /
               f"ablation-{args.dataset}-{datetime.date.today().isoformat()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"dataset": args.dataset, "date": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.processor()}",
              "rows": rows}
    _write_text(out, json.dumps(record, indent=2) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
