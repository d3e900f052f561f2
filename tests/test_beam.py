"""`biax prepare --runner`: the Beam pipeline gives what the local path gives."""

import importlib.util
import json
import subprocess
import sys

import pytest

from biax_keras import data
from biax_keras.app import cli
from biax_keras.errors import UserError

# Training recipes, subprocesses and shipped models: the slow tier (`make test-all`).
pytestmark = pytest.mark.slow

HAS_BEAM = importlib.util.find_spec("apache_beam") is not None
needs_beam = pytest.mark.skipif(not HAS_BEAM, reason="needs the beam extra (apache-beam)")


def split_records(directory):
    """split -> sorted serialized records of all its shards."""
    import tensorflow as tf

    return {split: sorted(tf.data.TFRecordDataset(data.split_files(directory, split))
                          .as_numpy_iterator())
            for split in data.SPLITS}


def without_seconds(report):
    return {k: v for k, v in report.items() if k != "seconds"}


@needs_beam
def test_the_direct_runner_writes_the_same_records_and_report(broken_midi_folder, tmp_path):
    folder, good, bad = broken_midi_folder
    local = data.prepare(folder, tmp_path / "local", workers=1, shards=2)
    command = [sys.executable, "-m", "biax_keras.app.cli", "prepare", str(folder),
               "--out", str(tmp_path / "beam"), "--shards", "2", "--runner", "DirectRunner",
               "--direct_num_workers=2", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    on_beam = json.loads(result.stdout)

    # The same pieces read, the same files skipped for the same reasons, in order.
    assert without_seconds(on_beam) == without_seconds(local)
    assert len(local["read"]) == len(good) and len(local["skipped"]) == len(bad)
    for name in ("meta.json", "lengths.json"):
        assert (tmp_path / "beam" / name).read_text() == (tmp_path / "local" / name).read_text()
    assert json.loads((tmp_path / "beam" / "report.json").read_text()) == on_beam
    assert split_records(tmp_path / "beam") == split_records(tmp_path / "local")
    assert sorted(p.name for p in (tmp_path / "beam").iterdir()) == sorted(
        p.name for p in (tmp_path / "local").iterdir())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def run_prepare(capsys, *argv):
    try:
        code = cli.main(["prepare", *map(str, argv)])
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


@needs_beam
@pytest.mark.parametrize("extra, words", [
    (["--runner", "NoSuchRunner"], "unknown Beam runner 'NoSuchRunner'; known runners: "),
    (["--runner", "DirectRunner", "--direct_num_wrokers=2"],
     "unknown Beam pipeline option --direct_num_wrokers=2 (did you mean --direct_num_workers?)"),
    (["--runner", "DirectRunner", "--direct_num_workers=two"], "bad Beam pipeline option"),
])
def test_a_bad_runner_or_option_is_one_line_exit_2(write_midi, tmp_path, capsys, extra, words):
    source = write_midi("one.mid")
    code, err = run_prepare(capsys, source, "--out", tmp_path / "out", *extra)
    assert code == 2 and words in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(HAS_BEAM, reason="checks the message shown without apache-beam")
def test_without_beam_the_runner_flag_says_what_to_install(write_midi, tmp_path, capsys):
    source = write_midi("one.mid")
    code, err = run_prepare(capsys, source, "--out", tmp_path / "out", "--runner", "DirectRunner")
    assert code == 2 and "pip install 'biax_keras[beam]'" in err, err
    assert len(err.strip().splitlines()) == 1


def test_beam_options_without_a_runner_are_refused(write_midi, tmp_path, capsys):
    source = write_midi("one.mid")
    code, err = run_prepare(capsys, source, "--out", tmp_path / "out", "--direct_num_workers=2")
    assert code == 2 and "unrecognized arguments: --direct_num_workers=2" in err, err
    with pytest.raises(UserError, match="--shards must be between 1"):
        data.prepare(source, tmp_path / "out", shards=0)
