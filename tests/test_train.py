"""`biax train`: a tiny run end to end, TensorBoard output, resuming, bad input."""

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import midi_bytes

from biax_keras import data, train
from biax_keras.app import cli
from biax_keras.errors import UserError
from biax_keras.nn.model import BiaxialModel
from biax_keras.train import config as train_config
from biax_keras.train import summaries
from biax_keras.train import runs

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "training" / "configs" / "tiny.json"
RUN_CONTENTS = {"config.json", "data.json", "logs", "history.csv", "epoch_times.csv", "checkpoints",
                "model.keras"}
# Batches per epoch in the tests: enough for the tiny model's loss to fall clearly.
STEPS = 20


def arpeggio_piece(root, bars):
    """A C-major-like arpeggio over a held bass, transposed to `root`: easy to learn."""
    notes = []
    for bar in range(bars):
        for quarter, interval in enumerate((0, 4, 7, 12)):
            notes.append((root + interval, bar * 4 + quarter, bar * 4 + quarter + 1))
        notes.append((root - 12, bar * 4, bar * 4 + 4))
    return notes


def arpeggio_folder(base):
    """`base/midi`: 20 six-bar arpeggio pieces (96 steps each) on every root of the octave."""
    source = base / "midi"
    source.mkdir()
    for i in range(20):
        (source / f"piece{i:02d}.mid").write_bytes(midi_bytes(arpeggio_piece(48 + i % 12, 6)))
    return source


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared folder of 20 six-bar pieces (96 steps each): 16 train, 2 valid, 2 test."""
    base = tmp_path_factory.mktemp("train_data")
    out = base / "prepared"
    report = data.prepare(arpeggio_folder(base), out, workers=1)
    assert report["pieces"]["valid"] >= 1
    return out


def run_cli(capsys, *argv):
    try:
        code = cli.main(["train", *map(str, argv)])
    except SystemExit as e:  # argparse rejects a flag
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def history(run):
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def tags(folder):
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(str(folder), size_guidance={"tensors": 0})
    accumulator.Reload()
    return accumulator


def check_tensorboard_shows_hparams_metrics(logdir, rows):
    """`tensorboard --logdir RUN/logs`, as the README says: the HParams table has metric values."""
    import re
    import urllib.request

    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("tensorboard")), "--logdir", str(logdir), "--port", "0",
         "--host", "127.0.0.1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            found = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
            url = found.group(1) if found else None
        assert url, "TensorBoard did not start"
        request = {"experimentName": "", "startIndex": 0, "sliceSize": 10, "colParams": [],
                   "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                       "STATUS_RUNNING"]}
        groups = []
        for _ in range(30):  # TensorBoard reads the logs in the background
            answer = urllib.request.urlopen(urllib.request.Request(
                url + "/data/plugin/hparams/session_groups", data=json.dumps(request).encode(),
                headers={"Content-Type": "application/json"}), timeout=30)
            groups = json.loads(answer.read())["sessionGroups"]
            if groups and len(groups[0].get("metricValues", [])) == 2:
                break
            time.sleep(1)
        assert [g["name"] for g in groups] == ["run"]
        values = {m["name"]["group"]: m["value"] for m in groups[0]["metricValues"]}
        assert values["validation"] == pytest.approx(float(rows[-1]["val_frame_nll"]), rel=1e-5)
        assert values["train"] == pytest.approx(float(rows[-1]["frame_nll"]), rel=1e-5)
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_tiny_training_run_end_to_end(prepared, tmp_path, capsys):
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "--data", prepared, "--out", run, "--config", TINY,
                             "--epochs", 2, "--steps-per-epoch", STEPS, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["epochs"] == 2 and report["initial_epoch"] == 0 and report["epochs_run"] == 2
    assert {p.name for p in run.iterdir()} == RUN_CONTENTS  # the backup is gone once finished
    assert (run / "checkpoints" / "best.keras").is_file()

    rows = history(run)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert float(rows[1]["loss"]) < 0.8 * float(rows[0]["loss"])
    assert float(rows[1]["val_frame_nll"]) < float(rows[0]["val_frame_nll"])
    assert report["best_val_frame_nll"] == pytest.approx(float(rows[1]["val_frame_nll"]))

    config = json.loads((run / "config.json").read_text())
    assert config["model"]["time_units"] == [8] and config["train"]["epochs"] == 2
    meta = data.load_meta(prepared)
    assert {k: config["model"][k] for k in train_config.DATA_KEYS} == {k: meta[k] for k in train_config.DATA_KEYS}
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    assert isinstance(model, BiaxialModel) and model.config.to_dict() == config["model"]

    logs = run / "logs" / "run"  # one TensorBoard run, named after the run folder
    train_tags = tags(logs / "train").Tags()["tensors"]
    assert {"epoch_frame_nll", "epoch_loss", "epoch_learning_rate"} <= set(train_tags)
    assert "epoch_frame_nll" in tags(logs / "validation").Tags()["tensors"]
    samples = tags(logs / "samples")
    events = samples.Tensors(summaries.OUTPUT_IMAGE_TAG)
    assert [e.step for e in events] == [0, 1]
    width, height = (int(v) for v in events[0].tensor_proto.string_val[:2])
    # Three labelled panels (true roll, P(play), P(articulate)), wide enough to read.
    assert width >= 400 and height >= 3 * 150
    assert [e.step for e in samples.Tensors(summaries.SAMPLE_IMAGE_TAG)] == [0, 1]
    assert [e.step for e in samples.Tensors(summaries.SAMPLE_AUDIO_TAG)] == [0, 1]
    assert "_hparams_/session_start_info" in tags(logs).Tags()["tensors"]
    check_tensorboard_shows_hparams_metrics(run / "logs", rows)

    # The same command on the finished run refuses, rather than overwriting it,
    # and says how to train on from it.
    code, _, err = run_cli(capsys, "--data", prepared, "--out", run, "--config", TINY)
    assert code == 2 and "finished run" in err and len(err.strip().splitlines()) == 1
    assert f"--init {run / 'checkpoints' / 'best.keras'}" in err and "--overwrite" in err
    assert len(history(run)) == 2
    # Asked to, it discards the run and trains a new one there.
    code, out, err = run_cli(capsys, "--data", prepared, "--out", run, "--config", TINY,
                             "--epochs", 1, "--steps-per-epoch", 2, "--overwrite", "--json",
                             "--image-every", 0, "--sample-every", 0)
    assert code == 0, err
    assert json.loads(out)["epochs"] == 1 and [int(r["epoch"]) for r in history(run)] == [0]
    settings = json.loads((run / "config.json").read_text())["train"]
    assert (settings["image_every"], settings["sample_every"]) == (0, 0)
    assert summaries.OUTPUT_IMAGE_TAG not in tags(run / "logs" / "run" / "samples").Tags()["tensors"]


class _RuinLastEpoch(keras.callbacks.Callback):
    """Throws the weights far off during epoch `epoch`: its valid NLL is then the worst."""

    def __init__(self, epoch):
        super().__init__()
        self.at = epoch
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == self.at:  # every weight 1: P(play) near 1 for every note
            for variable in self.model.trainable_variables:
                variable.assign(np.ones(variable.shape, "float32"))


def test_the_runs_model_holds_the_best_epochs_weights(prepared, tmp_path, capsys):
    run = tmp_path / "run"
    config = {"model": {"time_units": [8], "note_units": [8], "dropout": 0.0},
              "train": {"epochs": 3, "batch_size": 4, "window": 16, "steps_per_epoch": 10,
                        "image_every": 0, "sample_every": 0}}
    report = train.train(prepared, run, config, callbacks=[_RuinLastEpoch(2)], verbose=0)
    nll = [float(r["val_frame_nll"]) for r in history(run)]
    assert nll[2] > min(nll[:2])  # the last epoch is not the best
    assert report["best_epoch"] == 1 + int(np.argmin(nll))
    assert report["best_val_frame_nll"] == pytest.approx(min(nll))
    final = keras.saving.load_model(run / "model.keras", safe_mode=True, compile=False)
    best = keras.saving.load_model(run / "checkpoints" / "best.keras", safe_mode=True,
                                   compile=False)
    for ours, theirs in zip(final.get_weights(), best.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    assert f"epoch {report['best_epoch']}" in train.format_report(report)


class _Crash(keras.callbacks.Callback):
    """Raises in the middle of epoch `epoch`, as a crash would."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise RuntimeError("crash")


@pytest.mark.parametrize("backup_every", [None, 4])
def test_a_crashed_run_resumes_where_it_stopped(prepared, tmp_path, backup_every):
    run = tmp_path / "run"
    config = {"model": {"time_units": [8], "note_units": [8], "dropout": 0.0},
              "train": {"epochs": 3, "batch_size": 4, "window": 16, "steps_per_epoch": 10,
                        "image_every": 0, "sample_every": 0, "backup_every": backup_every}}
    with pytest.raises(RuntimeError, match="crash"):
        train.train(prepared, run, config, callbacks=[_Crash(epoch=1, batch=6)], verbose=0)
    assert json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    assert [int(r["epoch"]) for r in history(run)] == [0]

    # Resuming it on other data would mix two datasets in one run: refused,
    # naming what --overwrite would discard, before anything is touched.
    import shutil

    other = tmp_path / "other_data"
    shutil.copytree(prepared, other)
    with pytest.raises(UserError, match="unfinished run on .*1 finished epochs") as refused:
        train.train(other, run, config, verbose=0)
    assert f"--data {prepared}" in str(refused.value) and "--overwrite" in str(refused.value)
    assert runs.backup_epoch(run) == 1

    first_sitting = runs.training_seconds(run)
    assert first_sitting > 0

    report = train.train(prepared, run, config, verbose=0)
    assert report["initial_epoch"] == 1 and report["epochs_run"] == 2 and report["epochs"] == 3
    assert [int(r["epoch"]) for r in history(run)] == [0, 1, 2]
    # The run's training time counts both sittings' epochs, once each.
    with open(run / "epoch_times.csv", newline="") as f:
        times = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in times] == [0, 1, 2]
    assert runs.training_seconds(run) == pytest.approx(sum(float(r["seconds"]) for r in times))
    assert runs.training_seconds(run) > first_sitting
    assert {p.name for p in run.iterdir()} == RUN_CONTENTS
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    # The optimizer's state came back too: its step count runs on from the
    # backup (epoch 0's 10 steps; with a backup every 4 batches, 6 more of
    # epoch 1, which Keras then runs whole again) through the 2 epochs left.
    backed_up = {None: 10, 4: 16}[backup_every]
    assert int(model.optimizer.iterations.numpy()) == backed_up + 2 * 10


# `biax train` as a user runs it, with one callback more that kills the
# process outright (SIGKILL, as the OOM killer or a preempted machine does) at
# a known batch of a known epoch: no sleep decides where it dies.
_KILLED_TRAIN = textwrap.dedent("""
    import os, signal, sys
    import keras
    from biax_keras import train
    from biax_keras.app import cli
    from biax_keras.train import config as train_config
    from biax_keras.train import summaries

    epoch_to_kill, batch_to_kill = int(sys.argv[1]), int(sys.argv[2])

    class KillOutright(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == epoch_to_kill and batch == batch_to_kill:
                os.kill(os.getpid(), signal.SIGKILL)

    plain = train.train
    train.train = lambda *args, **kwargs: plain(*args, callbacks=[KillOutright()], **kwargs)
    sys.exit(cli.main(sys.argv[3:]))
""")


@pytest.mark.slow
def test_kill_9_mid_epoch_then_the_same_command_resumes(prepared, tmp_path):
    run = tmp_path / "run"
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps({
        "model": {"time_units": [8], "note_units": [8], "dropout": 0.0},
        "train": {"epochs": 4, "batch_size": 4, "window": 16, "steps_per_epoch": 20,
                  "image_every": 0, "sample_every": 0}}))
    argv = ["train", "--data", str(prepared), "--out", str(run), "--config", str(config_path),
            "--json"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    # Killed in the middle of the third epoch (index 2): two epochs are finished.
    first = subprocess.run([sys.executable, "-c", _KILLED_TRAIN, "2", "9", *argv], env=env,
                           capture_output=True, timeout=300)
    assert first.returncode == -signal.SIGKILL, first.stderr.decode()[-2000:]
    finished = json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"]
    assert finished == 2 and not (run / "model.keras").exists()

    second = subprocess.run([sys.executable, "-m", "biax_keras.app.cli", *argv], env=env,
                            capture_output=True, timeout=300)
    assert second.returncode == 0, second.stderr.decode()[-2000:]
    report = json.loads(second.stdout)
    assert report["initial_epoch"] == 2 and report["epochs_run"] == 2
    epochs = [int(r["epoch"]) for r in history(run)]
    assert epochs == [0, 1, 2, 3]
    assert {p.name for p in run.iterdir()} == RUN_CONTENTS


def test_init_starts_from_a_trained_model(prepared, tmp_path):
    from biax_keras.nn.model import BiaxialConfig, build_model

    start = build_model(BiaxialConfig(time_units=(5,), note_units=(3,)))
    start.set_weights([w + 0.5 for w in start.get_weights()])
    start.save(tmp_path / "start.keras")
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.extend(self.model.get_weights())

    config = {"train": {"epochs": 1, "batch_size": 4, "window": 16, "steps_per_epoch": 1,
                        "image_every": 0, "sample_every": 0}}
    report = train.train(prepared, tmp_path / "run", config, init=tmp_path / "start.keras",
                         callbacks=[Record()], verbose=0)
    assert report["config"]["model"]["time_units"] == [5]
    for got, want in zip(seen, start.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(UserError, match="differs from the --init model"):
        train.train(prepared, tmp_path / "run2", {"model": {"time_units": [8]}},
                    init=tmp_path / "start.keras")


def test_init_whose_compile_cannot_be_rebuilt_still_gives_its_weights(tmp_path, monkeypatch):
    """`--init` reads its file once, compiled for the optimizer's state; where Keras cannot
    rebuild the compile (any error), the weights alone are used."""
    import biax_keras
    from biax_keras.nn.model import BiaxialConfig, build_model
    from biax_keras.train import loop

    start = build_model(BiaxialConfig(time_units=(5,), note_units=(3,)))
    start.save(tmp_path / "start.keras")
    load = biax_keras._load_keras_file
    calls = []

    def compile_breaks(path, compile=False):
        calls.append(compile)
        if compile:
            raise RuntimeError("an optimizer this Keras cannot rebuild")
        return load(path, compile=compile)

    monkeypatch.setattr(biax_keras, "_load_keras_file", compile_breaks)
    model = loop._load_init(tmp_path / "start.keras")
    assert calls == [True, False] and loop._optimizer_state(model) is None
    for got, want in zip(model.get_weights(), start.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    monkeypatch.setattr(biax_keras, "_load_keras_file", load)
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(UserError, match=r"^--init .*junk.keras"):
        loop._load_init(tmp_path / "junk.keras")


@pytest.mark.slow
def test_init_from_a_checkpoint_goes_on_with_its_optimizer(prepared, tmp_path):
    """A run continued elsewhere from a checkpoint (--init RUN/checkpoints/best.keras) keeps
    Adam's moments and step count; from a weights-only file the optimizer starts afresh."""
    config = {"model": {"time_units": [5], "note_units": [3]},
              "train": {"epochs": 1, "batch_size": 4, "window": 16, "steps_per_epoch": 3,
                        "image_every": 0, "sample_every": 0, "ema": 0.9, "weight_decay": 0.1}}
    train.train(prepared, tmp_path / "first", config, verbose=0)
    saved = keras.saving.load_model(tmp_path / "first" / "checkpoints" / "best.keras")
    want = {v.path.split("/", 1)[1]: v.numpy() for v in saved.optimizer.variables
            if not v.path.endswith("learning_rate")}
    seen = {}

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.update({v.path.split("/", 1)[1]: v.numpy()
                         for v in self.model.optimizer.variables})

    train.train(prepared, tmp_path / "second", {**config, "train": {**config["train"],
                                                                    "learning_rate": 5e-4}},
                init=tmp_path / "first" / "checkpoints" / "best.keras", callbacks=[Record()],
                verbose=0)
    assert int(want["iteration"]) == 3
    for path, value in want.items():
        np.testing.assert_array_equal(seen[path], value, err_msg=path)
    assert seen["learning_rate"] == pytest.approx(5e-4)  # the new run's own
    seen.clear()
    # A file saved without its optimizer, as the shipped models are (benchmarks/ship.py).
    keras.saving.load_model(tmp_path / "first" / "model.keras", compile=False).save(
        tmp_path / "weights.keras")
    train.train(prepared, tmp_path / "third", config, init=tmp_path / "weights.keras",
                callbacks=[Record()], verbose=0)
    assert int(seen["iteration"]) == 0


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """The arpeggio pieces prepared as 4 train shards (2 per worker of a pair)."""
    base = tmp_path_factory.mktemp("sharded_data")
    out = base / "prepared"
    data.prepare(arpeggio_folder(base), out, workers=1, shards=4)
    assert data.load_meta(out)["shards"]["train"] == 4
    return out


# One worker of a cluster: `biax train` with the flags a user types, keeping
# its final weights where the test can read them.
WORKER_SCRIPT = """
import sys
import keras, numpy as np
from biax_keras import train
from biax_keras.app import cli
from biax_keras.train import config as train_config
from biax_keras.train import summaries

class KeepWeights(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        np.savez(sys.argv[1], *self.model.get_weights())

plain = train.train
train.train = lambda *args, **kwargs: plain(*args, **kwargs, callbacks=[KeepWeights()])
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_two_workers_train_together(sharded, tmp_path):
    run = tmp_path / "run"
    cluster = {"worker": [f"localhost:{free_port()}", f"localhost:{free_port()}"]}
    workers = [subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, str(tmp_path / f"weights{index}.npz"),
         "train", "--data", str(sharded), "--out", str(run), "--config", str(TINY),
         "--steps-per-epoch", "20", "--strategy", "multi_worker", "--peer-timeout", "120",
         "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}})))
        for index in range(2)]
    try:
        outputs = [worker.communicate(timeout=420) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err.decode()[-3000:]
    reports = [json.loads(out) for out, _ in outputs]
    # Synchronous training: both workers end with the very same weights.
    weights = [np.load(tmp_path / f"weights{index}.npz") for index in range(2)]
    assert len(weights[0].files) == len(weights[1].files) > 0
    for name in weights[0].files:
        np.testing.assert_array_equal(weights[0][name], weights[1][name])
    assert reports[0]["last"] == reports[1]["last"]
    # Only the chief kept a run folder, and it learned.
    assert {p.name for p in run.iterdir()} == RUN_CONTENTS
    rows = history(run)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert float(rows[1]["loss"]) < 0.8 * float(rows[0]["loss"])


@pytest.mark.slow
def test_a_worker_whose_peer_never_answers_gives_up_in_one_line(sharded, tmp_path):
    me, peer = f"localhost:{free_port()}", f"localhost:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["TF_CONFIG"] = json.dumps({"cluster": {"worker": [me, peer]},
                                   "task": {"type": "worker", "index": 0}})
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "biax_keras.app.cli", "train", "--data", str(sharded),
         "--out", str(tmp_path / "run"), "--config", str(TINY), "--strategy", "multi_worker",
         "--peer-timeout", "5"], capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.splitlines() == [
        f"biax train: error: worker 0 ({me}): no answer from the other workers ({peer}) "
        f"within 5 s; start every worker listed in TF_CONFIG (or raise --peer-timeout)"]
    assert time.monotonic() - started < 150


@pytest.mark.parametrize("tf_config, words", [
    ("{cluster: ", "TF_CONFIG is not valid JSON"),
    ("[1, 2]", "TF_CONFIG must be a JSON object"),
    (json.dumps({"task": {"type": "worker", "index": 0}}), 'TF_CONFIG has no "cluster"'),
    (json.dumps({"cluster": {"worker": ["localhost"]}, "task": {"type": "worker"}}),
     "must be a list of \"host:port\" addresses"),
    (json.dumps({"cluster": {"worker": ["a:1", "b:2"]}}), 'TF_CONFIG has no "task"'),
    (json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "chief", "index": 0}}),
     "task type 'chief' is not a job of its cluster"),
    (json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}),
     "task index 2 is not one of the 2 worker addresses (0..1)"),
])
def test_a_malformed_tf_config_is_one_line_exit_2(prepared, tmp_path, capsys, monkeypatch,
                                                   tf_config, words):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    code, _, err = run_cli(capsys, "--data", prepared, "--out", tmp_path / "run",
                           "--strategy", "multi_worker")
    assert code == 2 and words in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_mirrored_strategy_trains(prepared, tmp_path):
    config = {"model": {"time_units": [4], "note_units": [4]},
              "train": {"epochs": 1, "batch_size": 4, "window": 16, "steps_per_epoch": 3,
                        "image_every": 0, "sample_every": 0}}
    report = train.train(prepared, tmp_path / "run", config, strategy="mirrored", verbose=0)
    assert report["epochs"] == 1 and np.isfinite(report["last"]["val_frame_nll"])


@pytest.mark.filterwarnings("error::UserWarning")  # the example users copy runs clean
def test_the_plain_fit_script(prepared, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("fit_script", ROOT / "training" / "train.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "model.keras"
    history = script.main(["--data", str(prepared), "--config", str(TINY), "--epochs", "2",
                           "--steps-per-epoch", "10", "--batch-size", "4", "--window", "16",
                           "--learning-rate", "0.01", "--out", str(out)])
    assert history.history["loss"][1] < history.history["loss"][0]
    assert keras.saving.load_model(out, safe_mode=True).config.time_units == (8,)


# ----------------------------------------------------------------------------
# Configs against the data
# ----------------------------------------------------------------------------

META = {"format": "biax_keras.data.records", "version": 1, "steps_per_quarter": 1,
        "lowest_pitch": 21, "num_notes": 88, "play_only": True, "source": "jsb.json"}


def test_image_and_sample_every_n_epochs_from_the_command_line(prepared, tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "--data", prepared, "--out", run, "--config", TINY,
                           "--epochs", 2, "--steps-per-epoch", 2, "--image-every", 2,
                           "--sample-every", 0)
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())["train"]
    assert (config["image_every"], config["sample_every"]) == (2, 0)  # tiny.json says 1, 1
    samples = tags(run / "logs" / "run" / "samples")
    assert [e.step for e in samples.Tensors(summaries.OUTPUT_IMAGE_TAG)] == [1]  # epoch 2 only
    assert summaries.SAMPLE_IMAGE_TAG not in samples.Tags()["tensors"]


def test_the_data_range_comes_from_the_data():
    model, _ = train.resolve_config({"model": {"time_units": [8]}}, META)
    assert (model.lowest_pitch, model.num_notes, model.steps_per_quarter, model.play_only) == (
        21, 88, 1, True)
    model, _ = train.resolve_config(ROOT / "training" / "configs" / "jsb.json", META)
    assert model.time_units == (150, 150) and model.play_only
    model, _ = train.resolve_config(None, dict(META, play_only=False))
    assert not model.play_only


@pytest.mark.parametrize("model_values, words", [
    ({"num_notes": 78}, "--num-notes 78"),
    ({"lowest_pitch": 24}, "--lowest-pitch 24"),
    ({"steps_per_quarter": 4}, "--steps-per-quarter 4"),
    ({"play_only": False}, "no articulation"),
])
def test_a_config_that_disagrees_with_the_data_is_refused(model_values, words):
    with pytest.raises(UserError, match=words):
        train.resolve_config({"model": model_values}, META)


def test_overrides_replace_the_file(tmp_path):
    _, config = train.resolve_config(TINY, overrides={"epochs": 7, "window": None})
    assert config.epochs == 7 and config.window == 16


# ----------------------------------------------------------------------------
# Bad input: one line, exit code 2
# ----------------------------------------------------------------------------


def bad_cases(prepared, tmp_path):
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"train": {"epoch": 2}}))
    wrong_type = tmp_path / "wrong.json"
    wrong_type.write_text(json.dumps({"model": {"time_units": "big"}}))
    not_json = tmp_path / "broken.json"
    not_json.write_text("{model: ")
    mismatch = tmp_path / "mismatch.json"
    mismatch.write_text(json.dumps({"model": {"num_notes": 88}}))
    fake_model = tmp_path / "fake.keras"
    fake_model.write_text("not a zip")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    empty = tmp_path / "empty"
    empty.mkdir()
    run = tmp_path / "run"
    return [
        (["--data", empty, "--out", run], "not a prepared dataset"),
        (["--data", prepared, "--out", run, "--config", unknown], "unknown train config key(s) epoch"),
        (["--data", prepared, "--out", run, "--config", wrong_type], "time_units"),
        (["--data", prepared, "--out", run, "--config", not_json], "not valid JSON"),
        (["--data", prepared, "--out", run, "--config", tmp_path / "missing.json"], "cannot read config"),
        (["--data", prepared, "--out", run, "--config", mismatch], "--num-notes 88"),
        (["--data", prepared, "--out", run, "--config", TINY, "--window", 500], "longer than every piece"),
        (["--data", prepared, "--out", run, "--init", fake_model], "is not a Keras model file"),
        (["--data", prepared, "--out", other], "holds other files"),
        (["--data", prepared, "--out", run, "--epochs", 0], "must be positive"),
        (["--data", prepared, "--out", run, "--sample-every", -1], "must be 0 or more"),
    ]


def test_bad_input_is_one_line_and_exit_code_2(prepared, tmp_path, capsys):
    for argv, words in bad_cases(prepared, tmp_path):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2, (argv, err)
        assert words in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, (argv, err)
        assert not (tmp_path / "run").exists(), argv  # nothing written for bad input


@pytest.mark.slow
def test_bad_data_folder_from_the_console_script(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "biax_keras.app.cli", "train", "--data", str(tmp_path),
         "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    # The one line is all of stderr: TensorFlow's start-up lines are kept off it.
    assert result.stderr.splitlines() == [
        f"biax train: error: {tmp_path} is not a prepared dataset (no meta.json); "
        f"run `biax prepare SOURCE --out {tmp_path}` first"]
