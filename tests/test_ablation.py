"""benchmarks/ablation.py: variants over seeds, run as a user runs it, on a tiny file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_quality_recipe import TINY, TINY_CONFIG

# Training recipes, subprocesses and shipped models: the slow tier (`make test-all`).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "ablation.py"


def _ablation(tmp_path, *args):
    """The script on the tiny file; no recorded table unless `args` names one."""
    if "--recorded" not in args:
        args = (*args, "--recorded", "none")
    environment = dict(
        os.environ, TF_CPP_MIN_LOG_LEVEL="2", BIAX=str(Path(sys.executable).parent / "biax"),
        DATA_DIR=str(tmp_path / "shared"), PREPARED=str(tmp_path / "data"))
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--dataset", "nottingham", "--base", str(tmp_path / "base.json"),
         "--variants-file", str(tmp_path / "variants.json"), "--runs", str(tmp_path / "runs"),
         "--out", str(tmp_path / "table.json"), *args],
        env=environment, capture_output=True, text=True, timeout=900)


def test_variants_over_seeds_make_one_table_and_a_second_run_trains_nothing(tmp_path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "nottingham.json").write_text(json.dumps(TINY))
    (tmp_path / "base.json").write_text(json.dumps(TINY_CONFIG))
    (tmp_path / "variants.json").write_text(json.dumps({
        "base": {"change": "as it is"},
        "no-transpose": {"change": "no random transposition", "train": {"transpose": False}},
        "unused": {"change": "not asked for", "model": {"dropout": 0.3}},
    }))
    done = _ablation(tmp_path, "--variants", "base,no-transpose", "--seeds", "0,1")
    assert done.returncode == 0, done.stderr
    table = json.loads((tmp_path / "table.json").read_text())
    assert [r["variant"] for r in table["rows"]] == ["base", "no-transpose"]
    for row in table["rows"]:
        assert [s["seed"] for s in row["seeds"]] == [0, 1]
        nll = [s["valid_frame_nll"] for s in row["seeds"]]
        assert row["best"] == min(nll) and min(nll) <= row["median"] <= max(nll)
        assert all(s["epochs"] == 2 for s in row["seeds"])
    base = table["rows"][0]["median"]
    assert table["rows"][1]["delta"] == table["rows"][1]["median"] - base
    # Each run trained on its own change and seed.
    run = tmp_path / "runs" / "nottingham" / "no-transpose-seed1" / "nottingham"
    config = json.loads((run / "config.json").read_text())["train"]
    assert (config["transpose"], config["seed"]) == (False, 1)
    assert "| no-transpose | no random transposition | 2 |" in done.stdout

    assert all(s["seconds"] > 0 and s["train_frame_nll"] > 0
               for row in table["rows"] for s in row["seeds"])

    times = tmp_path / "runs" / "nottingham" / "base-seed0" / "nottingham" / "epoch_times.csv"
    results = sorted((tmp_path / "runs" / "nottingham" / "base-seed0" / "results").iterdir())
    before = (times.read_text(), [p.stat().st_mtime_ns for p in results])
    again = _ablation(tmp_path, "--variants", "base,no-transpose", "--seeds", "0,1")
    assert again.returncode == 0, again.stderr
    # Finished: not trained or scored again.
    assert (times.read_text(), [p.stat().st_mtime_ns for p in results]) == before
    assert json.loads((tmp_path / "table.json").read_text())["rows"] == table["rows"]
    # A call that asks for one variant and seed still writes the whole table.
    narrow = _ablation(tmp_path, "--collect", "--variants", "base", "--seeds", "0")
    assert narrow.returncode == 0, narrow.stderr
    assert json.loads((tmp_path / "table.json").read_text())["rows"] == table["rows"]
    assert "| no-transpose | no random transposition | 2 |" in narrow.stdout

    # Run folders lost (a new machine): the recorded table keeps their seeds,
    # and a seed whose folder is here is read from the folder, not the record.
    recorded = tmp_path / "recorded.json"
    stale = json.loads((tmp_path / "table.json").read_text())
    stale["rows"][0]["seeds"][0]["valid_frame_nll"] = 99.0
    recorded.write_text(json.dumps(stale))
    runs = tmp_path / "runs" / "nottingham"
    for name in ("base-seed1", "no-transpose-seed0", "no-transpose-seed1"):
        (runs / name).rename(tmp_path / name)
    kept = _ablation(tmp_path, "--collect", "--recorded", str(recorded))
    assert kept.returncode == 0, kept.stderr
    assert json.loads((tmp_path / "table.json").read_text())["rows"] == table["rows"]
    only_disk = _ablation(tmp_path, "--collect")
    assert only_disk.returncode == 0, only_disk.stderr
    rows = json.loads((tmp_path / "table.json").read_text())["rows"]
    assert [(r["variant"], [s["seed"] for s in r["seeds"]]) for r in rows] == [("base", [0])]
    (tmp_path / "other.json").write_text(json.dumps(dict(stale, dataset="musedata")))
    other = _ablation(tmp_path, "--collect", "--recorded", str(tmp_path / "other.json"))
    assert other.returncode == 2
    assert other.stderr.count("\n") == 1 and "is the table of musedata" in other.stderr


def test_unknown_variant_and_nothing_done_are_one_line(tmp_path):
    (tmp_path / "base.json").write_text(json.dumps(TINY_CONFIG))
    (tmp_path / "variants.json").write_text(json.dumps({"base": {"change": "as it is"}}))
    unknown = _ablation(tmp_path, "--variants", "bigger")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "ablation: unknown variant bigger; choose from base"
    nothing = _ablation(tmp_path, "--collect")
    assert nothing.returncode == 2 and "no finished runs" in nothing.stderr
    # A recorded table that is not there is refused before anything trains.
    missing = _ablation(tmp_path, "--variants", "base", "--recorded", str(tmp_path / "gone.json"))
    assert missing.returncode == 2 and not (tmp_path / "runs").exists()
    assert missing.stderr.strip() == (f"ablation: --recorded {tmp_path / 'gone.json'}: no such "
                                      "file; pass a table this script wrote, or none")
    (tmp_path / "gone.json").write_text("[1, 2]")
    not_a_table = _ablation(tmp_path, "--collect", "--recorded", str(tmp_path / "gone.json"))
    assert not_a_table.returncode == 2 and "is not an ablation table" in not_a_table.stderr


def test_every_listed_variant_is_a_valid_config_that_changes_the_recipe():
    """A typo in benchmarks/ablations.json would cost a run; each variant
    must resolve on every dataset's config, and on JSB's (the table's) to one
    that is not the base (others may already have a variant's value)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import ablation

    from biax_keras.train.config import resolve_config

    variants = json.loads(ablation.VARIANTS.read_text())
    assert "base" in variants and all(v.get("change") for v in variants.values())
    for config_name in ablation.CONFIGS.values():
        base = json.loads((ROOT / "training" / "configs" / f"{config_name}.json").read_text())
        resolved_base = resolve_config(base)
        for name, variant in variants.items():
            assert set(variant) <= {"change", "model", "train"}, name
            resolved = resolve_config(ablation.variant_config(base, variant))
            if config_name == ablation.CONFIGS["jsb_chorales"]:
                assert (resolved == resolved_base) == (name == "base"), name


def test_benchmarks_ablation_table_quotes_the_recorded_runs():
    """Each row of BENCHMARKS.md's JSB ablation table is the newest recorded table's row."""
    import re

    from test_saved_models import newest_result

    rows = {row["variant"]: row for row in newest_result("ablation-jsb_chorales")["rows"]}
    text = (ROOT / "BENCHMARKS.md").read_text()
    section = text[text.index("### Ablations on JSB"):]
    quoted = re.findall(r"^\| ([\w.-]+) \| [^|]+ \| (\d+) \(seeds? ([\d, ]+)\) \| ([\d.]+) \| ([\d.]+) "
                        r"\|\s*([+-][\d.]+)?\s*\|", section, flags=re.M)
    assert {q[0] for q in quoted} == set(rows), "the table's variants are not the recorded ones"
    for variant, count, seeds, median, best, delta in quoted:
        row = rows[variant]
        assert [s["seed"] for s in row["seeds"]] == [int(s) for s in seeds.split(",")], variant
        assert int(count) == len(row["seeds"]), variant
        assert median == f"{row['median']:.3f}" and best == f"{row['best']:.3f}", variant
        if variant != "base":
            assert delta == f"{row['delta']:+.3f}", variant


def test_collect_on_a_machine_without_the_runs_keeps_the_recorded_table(tmp_path):
    """As the README says: with no run folders here, the table is the newest recorded one."""
    from test_saved_models import newest_result

    out = tmp_path / "table.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dataset", "jsb_chorales", "--collect",
         "--runs", str(tmp_path / "runs"), "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    recorded = newest_result("ablation-jsb_chorales")["rows"]
    assert json.loads(out.read_text())["rows"] == recorded
    assert f"| base | {recorded[0]['change']} | {len(recorded[0]['seeds'])} |" in done.stdout
