"""`biax prepare` on the command line: exit codes, --json, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

from biax_keras import cli


def test_prepare_mixed_folder_exits_0_with_json_report(broken_midi_folder, tmp_path):
    folder, good, bad = broken_midi_folder
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "biax_keras.cli", "prepare", str(folder), "--out", str(out), "--json"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # exactly one JSON object on stdout
    assert {str(Path(p).relative_to(folder)) for p in report["read"]} == good
    skipped = {str(Path(s["path"]).relative_to(folder)): s["reason"] for s in report["skipped"]}
    assert set(skipped) == set(bad)
    assert all(word in skipped[name] for name, word in bad.items())
    assert json.loads((out / "report.json").read_text()) == report


def test_prepare_prints_a_summary_without_json(write_midi, tmp_path, capsys):
    path = write_midi("a.mid")
    assert cli.main(["prepare", str(path), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "Read 1 pieces" in printed and "train" in printed


def _one_line_error(capsys, argv):
    code = cli.main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and captured.out == "", captured.err
    return lines[0]


def test_missing_path_is_one_line_and_exit_2(tmp_path, capsys):
    line = _one_line_error(capsys, ["prepare", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert "does not exist" in line
    assert not (tmp_path / "o").exists()


def test_folder_without_midi_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no music here")
    line = _one_line_error(capsys, ["prepare", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert "no MIDI files" in line


def test_bad_split_flag_is_one_line_and_exit_2(write_midi, tmp_path, capsys):
    path = write_midi("a.mid")
    line = _one_line_error(capsys, ["prepare", str(path), "--out", str(tmp_path / "o"),
                                    "--split", "0.5,0.5"])
    assert "split" in line
