"""`biax prepare` on the command line: exit codes, --json, one-line errors."""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PHRASE, midi_bytes

from biax_keras import data
from biax_keras.app import cli
from biax_keras.data import records


@pytest.mark.slow
def test_prepare_mixed_folder_exits_0_with_json_report(broken_midi_folder, tmp_path):
    folder, good, bad = broken_midi_folder
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "biax_keras.app.cli", "prepare", str(folder), "--out", str(out), "--json"],
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


# ----------------------------------------------------------------------------
# A JSB-format file's resolution
# ----------------------------------------------------------------------------


def _jsb_file(path):
    piece = [[60, 64, 67], [60, 64, 67], [62, 65], [62, 65]] * 2
    path.write_text(json.dumps({"train": [piece, piece], "valid": [piece], "test": [piece]}))
    return path


@pytest.mark.parametrize("name, flag, steps_per_quarter", [
    ("jsb-chorales-quarter.json", [], 1),
    ("jsb-chorales-16th.json", [], 4),
    ("jsb-chorales-quarter.json", ["--steps-per-quarter", "2"], 2),  # the user knows best
    ("chorales.json", ["--steps-per-quarter", "1"], 1),
])
def test_a_jsb_file_is_prepared_at_its_own_resolution(tmp_path, capsys, name, flag,
                                                      steps_per_quarter):
    source = _jsb_file(tmp_path / name)
    assert cli.main(["prepare", str(source), "--out", str(tmp_path / "out"), *flag]) == 0
    assert data.load_meta(tmp_path / "out")["steps_per_quarter"] == steps_per_quarter


def test_a_jsb_file_that_does_not_say_its_resolution_is_refused(tmp_path, capsys):
    line = _one_line_error(capsys, ["prepare", str(_jsb_file(tmp_path / "chorales.json")),
                                    "--out", str(tmp_path / "out")])
    assert "does not say its time resolution" in line and "--steps-per-quarter" in line
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------
# Splits among the pieces that could be read
# ----------------------------------------------------------------------------


def _mostly_broken_folder(folder, good, bad):
    """`good + bad` MIDI files, the good ones all among those the seeded split
    sends to train, so that reading leaves valid and test empty."""
    folder.mkdir()
    names = [str(folder / f"piece{i:02d}.mid") for i in range(good + bad)]
    first_split = data.assign_splits(names)
    good_names = [n for n in names if first_split[n] == "train"][:good]
    for i, name in enumerate(names):
        usable = name in good_names
        Path(name).write_bytes(midi_bytes([(p + i, s, e) for p, s, e in PHRASE]) if usable else b"")
    return folder


def _pieces_by_split(out):
    return {split: sorted(name for name, _, _ in data.read_pieces(out, split))
            for split in data.SPLITS}


def test_splits_are_chosen_among_the_pieces_that_could_be_read(tmp_path, capsys, caplog):
    folder = _mostly_broken_folder(tmp_path / "midi", good=6, bad=16)
    with caplog.at_level(logging.WARNING):
        assert cli.main(["prepare", str(folder), "--out", str(tmp_path / "a"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pieces"] == {"train": 4, "valid": 1, "test": 1}
    assert "splitting the 6 pieces read again" in caplog.text
    first = _pieces_by_split(tmp_path / "a")
    assert {k: len(v) for k, v in first.items()} == report["pieces"]
    lengths = json.loads((tmp_path / "a" / records.LENGTHS_FILE).read_text())
    assert {k: len(v) for k, v in lengths.items()} == report["pieces"]
    assert sum(report["steps"].values()) == 6 * 16
    # Deterministic: the same folder and seed give the same splits.
    assert cli.main(["prepare", str(folder), "--out", str(tmp_path / "b")]) == 0
    assert _pieces_by_split(tmp_path / "b") == first


def test_an_empty_valid_split_is_warned_about_and_train_says_what_to_do(tmp_path, capsys, caplog):
    folder = _mostly_broken_folder(tmp_path / "midi", good=2, bad=5)
    with caplog.at_level(logging.WARNING):
        assert cli.main(["prepare", str(folder), "--out", str(tmp_path / "d")]) == 0
    assert "the valid split is empty: only 2 piece(s) could be read, and `biax train` " \
           "validates on it" in caplog.text
    capsys.readouterr()
    line = _one_line_error(capsys, ["train", "--data", str(tmp_path / "d"), "--out",
                                    str(tmp_path / "run"), "--epochs", "1", "--window", "8"])
    assert "has no pieces in its valid split; prepare it again from more pieces" in line


# ----------------------------------------------------------------------------
# Stopped or killed: nothing half-written is left
# ----------------------------------------------------------------------------


def test_leftovers_of_a_killed_prepare_are_removed_by_the_next(write_midi, tmp_path):
    path = write_midi("a.mid")
    dead = tmp_path / ".out.tmp-99999999-abcd"  # no process has that id
    dead.mkdir()
    (dead / "train-00000-of-00001.tfrecord").write_bytes(b"half")
    running = tmp_path / f".out.tmp-{os.getpid()}-efgh"  # a run still going keeps its own
    running.mkdir()
    assert cli.main(["prepare", str(path), "--out", str(tmp_path / "out")]) == 0
    assert not dead.exists() and running.exists()


@pytest.mark.slow
def test_sigterm_during_prepare_leaves_nothing_behind(tmp_path):
    folder = tmp_path / "midi"
    folder.mkdir()
    # Enough pieces that reading them outlasts a test process starved of CPU on a busy
    # machine between seeing the staging folder and sending the signal. Most of the
    # time goes in note_seq's MIDI parser, which wraps every exception (this signal's
    # KeyboardInterrupt too) as a bad file: the run must still stop.
    for i in range(3000):
        (folder / f"piece{i:04d}.mid").write_bytes(midi_bytes([(60 + i % 12, 0, 2), (64, 2, 4)]))
    process = subprocess.Popen(
        [sys.executable, "-m", "biax_keras.app.cli", "prepare", str(folder), "--out",
         str(tmp_path / "out"), "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.tmp-*")) and time.monotonic() < deadline \
            and process.poll() is None:
        time.sleep(0.01)
    assert list(tmp_path.glob(".out.tmp-*")), "prepare never started writing"
    process.send_signal(signal.SIGTERM)  # what `kill` and `timeout` send
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["midi"]
