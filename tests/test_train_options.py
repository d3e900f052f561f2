"""Training options beyond the seed recipe: averaged weights, learning-rate decay,
weight decay, transposition off; and early stopping that survives a resume."""

import json

import keras
import numpy as np
import pytest
from test_train import _Crash, arpeggio_folder, history

from biax_keras import data, train
from biax_keras.app import cli
from biax_keras.nn.model import build_model
from biax_keras.train import callbacks, summaries
from biax_keras.train import runs

SMALL = {"model": {"time_units": [8], "note_units": [8], "dropout": 0.0},
         "train": {"epochs": 2, "batch_size": 4, "window": 16, "steps_per_epoch": 6,
                   "learning_rate": 0.01, "image_every": 0, "sample_every": 0}}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("options_data")
    out = base / "prepared"
    data.prepare(arpeggio_folder(base), out, workers=1)
    return out


def with_train(**values):
    return {"model": dict(SMALL["model"]), "train": {**SMALL["train"], **values}}


class _Record(keras.callbacks.Callback):
    """After every epoch's records: the model's weights and the optimizer's averages."""

    def __init__(self):
        super().__init__()
        self.trained, self.averaged = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.trained.append([w.copy() for w in self.model.get_weights()])
        optimizer = self.model.optimizer
        self.averaged.append([np.array(v.numpy()) for v in
                              optimizer._model_variables_moving_average])


def test_ema_validates_and_saves_the_average_and_trains_on(prepared, tmp_path):
    run = tmp_path / "run"
    record = _Record()
    report = train.train(prepared, run, with_train(ema=0.5), callbacks=[record], verbose=0)
    assert json.loads((run / "config.json").read_text())["train"]["ema"] == 0.5
    saved = keras.saving.load_model(run / "model.keras", safe_mode=True)
    best = report["best_epoch"] - 1
    trainable = [v.path for v in saved.trainable_variables]
    saved_values = {v.path: v.numpy() for v in saved.trainable_variables}
    # The callbacks after the run's own see the trained weights back in the
    # model (the next epoch trains them) and the average in the optimizer...
    for name, trained, averaged in zip(trainable, record.trained[best], record.averaged[best]):
        np.testing.assert_allclose(saved_values[name], averaged, rtol=0, atol=1e-6)
    assert any(not np.allclose(t, a) for t, a in zip(record.trained[best], record.averaged[best]))
    # ...and the valid figure in history.csv is the saved average's.
    valid = data.make_dataset(prepared, "valid", window=16, batch_size=4, seed=0)
    scores = saved.evaluate(valid, return_dict=True, verbose=0)
    recorded = float(history(run)[best]["val_frame_nll"])
    assert scores["frame_nll"] == pytest.approx(recorded, rel=1e-4)


def test_ema_backup_holds_the_trained_weights_and_the_average(prepared, tmp_path):
    """A resumed run trains on from its trained weights, its average beside them."""
    run = tmp_path / "run"
    record = _Record()
    with pytest.raises(RuntimeError, match="crash"):
        train.train(prepared, run, with_train(ema=0.5), callbacks=[record, _Crash(1, 2)],
                    verbose=0)
    model = build_model(SMALL["model"] | {"lowest_pitch": 48, "num_notes": 24}, ema=0.5)
    inputs, target = summaries._first_window(data.make_dataset(prepared, "valid", window=16,
                                                          batch_size=4, seed=0))
    model.train_on_batch(inputs, target)
    model.load_weights(next((run / "backup").rglob("*.weights.h5")))
    for restored, trained in zip(model.get_weights(), record.trained[0]):
        np.testing.assert_allclose(restored, trained, rtol=0, atol=1e-6)
    averages = model.optimizer._model_variables_moving_average
    for restored, averaged in zip(averages, record.averaged[0]):
        np.testing.assert_allclose(restored.numpy(), averaged, rtol=0, atol=1e-6)


def test_lr_decay_survives_a_backup(prepared, tmp_path):
    """BackupAndRestore keeps the decayed learning rate (it saves the optimizer's variables)."""
    model = build_model(SMALL["model"] | {"lowest_pitch": 48, "num_notes": 24}, learning_rate=1e-3)
    inputs, target = summaries._first_window(data.make_dataset(prepared, "valid", window=16,
                                                          batch_size=4, seed=0))
    model.train_on_batch(inputs, target)
    model.optimizer.learning_rate = 2.5e-4
    model.save_weights(tmp_path / "backup.weights.h5")
    again = build_model(SMALL["model"] | {"lowest_pitch": 48, "num_notes": 24}, learning_rate=1e-3)
    again.train_on_batch(inputs, target)
    again.load_weights(tmp_path / "backup.weights.h5")
    assert float(again.optimizer.learning_rate.numpy()) == pytest.approx(2.5e-4)


def write_history(path, values):
    lines = ["epoch,loss,val_frame_nll"] + [f"{i},1.0,{v}" for i, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")


def test_plateau_so_far_counts_epochs_since_the_best(tmp_path):
    path = tmp_path / "history.csv"
    write_history(path, [5.0, 4.0, 4.5, 4.2, 4.1])
    assert callbacks._plateau_so_far(tmp_path, 5) == (4.0, 3)
    assert callbacks._plateau_so_far(tmp_path, 2) == (4.0, 0)
    assert callbacks._plateau_so_far(tmp_path, 0) == (None, 0)
    assert runs.best_epoch(tmp_path) == (4.0, 2)
    # A kill between an epoch's records and its backup repeats its row: counted once.
    path.write_text(path.read_text() + "4,1.0,4.1\n")
    assert callbacks._plateau_so_far(tmp_path, 5) == (4.0, 3)
    assert runs.valid_history(tmp_path) == {0: 5.0, 1: 4.0, 2: 4.5, 3: 4.2, 4: 4.1}
    assert runs.best_epoch(tmp_path / "none") == (None, None)


@pytest.mark.parametrize("remembered", [True, False])
def test_a_resumed_plateau_goes_on_counting(remembered):
    model = build_model({"time_units": [4], "note_units": [4], "num_notes": 12}, learning_rate=1e-3)
    plateau = (4.0, 2) if remembered else (None, 0)
    decay = callbacks._resumed(keras.callbacks.ReduceLROnPlateau, plateau)(
        monitor="val_frame_nll", mode="min", patience=3, factor=0.5)
    stop = callbacks._resumed(keras.callbacks.EarlyStopping, plateau)(
        monitor="val_frame_nll", mode="min", patience=3)
    for callback in (decay, stop):
        callback.set_model(model)
        callback.on_train_begin()
        callback.on_epoch_end(5, {"val_frame_nll": 4.5})
    # Two epochs without a better 4.0 before the resume, one after: patience 3 is spent.
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(
        5e-4 if remembered else 1e-3)
    assert bool(model.stop_training) is remembered


def test_a_resumed_decay_does_not_repeat_the_reductions_made_before_it():
    # Best 4.0, then 4 epochs without it: patience 3 halved the rate after the
    # third and began counting again, so 2 more epochs are needed, not 0.
    model = build_model({"time_units": [4], "note_units": [4], "num_notes": 12}, learning_rate=1e-3)
    decay = callbacks._resumed(keras.callbacks.ReduceLROnPlateau, (4.0, 4))(
        monitor="val_frame_nll", mode="min", patience=3, factor=0.5)
    stop = callbacks._resumed(keras.callbacks.EarlyStopping, (4.0, 4))(
        monitor="val_frame_nll", mode="min", patience=6)
    rates, stopped = [], []
    for callback in (decay, stop):
        callback.set_model(model)
        callback.on_train_begin()
    for epoch in (5, 6):
        for callback in (decay, stop):
            callback.on_epoch_end(epoch, {"val_frame_nll": 4.5})
        rates.append(float(model.optimizer.learning_rate.numpy()))
        stopped.append(bool(model.stop_training))
    assert rates == [pytest.approx(1e-3), pytest.approx(5e-4)]
    # Early stopping never starts again: 4 + 2 epochs spend its patience of 6.
    assert stopped == [False, True]


def test_cli_flags_reach_the_run_config(prepared, tmp_path, capsys):
    run = tmp_path / "run"
    config = tmp_path / "small.json"
    config.write_text(json.dumps(with_train(epochs=1, steps_per_epoch=2)))
    code = cli.main(["train", "--data", str(prepared), "--out", str(run), "--config", str(config),
                     "--lr-decay-patience", "3", "--weight-decay", "0.01", "--ema", "0.99",
                     "--no-transpose"])
    assert code == 0, capsys.readouterr().err
    values = json.loads((run / "config.json").read_text())["train"]
    assert (values["lr_decay_patience"], values["weight_decay"], values["ema"],
            values["transpose"]) == (3, 0.01, 0.99, False)
    saved = keras.saving.load_model(run / "model.keras", safe_mode=True)
    assert saved.optimizer.weight_decay == pytest.approx(0.01)


@pytest.mark.parametrize("flag, value, message", [
    ("--ema", "1.5", "must be between 0 and 1"),
    ("--weight-decay", "-1", "must be 0 or more"),
    ("--lr-decay-patience", "0", "must be positive"),
])
def test_bad_option_values_are_one_line(prepared, tmp_path, capsys, flag, value, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--data", str(prepared), "--out", str(tmp_path / "run"), flag, value])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("values, message", [
    ({"lr_decay_factor": 1.0}, "lr_decay_factor must be between 0 and 1"),
    ({"min_learning_rate": 0.1}, "min_learning_rate must be between 0 and the learning rate"),
    ({"ema": 0}, "ema must be between 0 and 1"),
])
def test_bad_option_values_in_a_config_are_refused(values, message):
    with pytest.raises(Exception, match=message):
        train.TrainConfig.from_dict(values)


def test_resuming_with_a_new_option_names_only_what_changed(prepared, tmp_path, caplog):
    """A run folder written before an option existed had its default: not a change
    (of the model, which would be refused, or of training, which is named)."""
    run = tmp_path / "run"
    config = with_train(epochs=2, steps_per_epoch=3)
    with pytest.raises(RuntimeError, match="crash"):
        train.train(prepared, run, config, callbacks=[_Crash(1, 1)], verbose=0)
    written = json.loads((run / "config.json").read_text())
    for key in ("lr_decay_patience", "lr_decay_factor", "min_learning_rate", "weight_decay", "ema"):
        del written["train"][key]
    del written["model"]["pitch_position"]
    (run / "config.json").write_text(json.dumps(written))
    with caplog.at_level("WARNING"):
        report = train.train(prepared, run, with_train(epochs=2, steps_per_epoch=3,
                                                       lr_decay_patience=4), verbose=0)
    assert report["initial_epoch"] == 1
    warnings = [r.getMessage() for r in caplog.records if "changed train settings" in r.getMessage()]
    assert warnings == [f"resuming {run} with changed train settings: lr_decay_patience"]


def test_training_on_data_with_an_empty_valid_split_is_one_line(tmp_path, capsys):
    """Early stopping needs valid: an empty valid split is refused before the run folder exists."""
    up = [[60, 64, 67], [62, 65, 69], [64, 67, 71], [65, 69, 72]] * 8
    source = tmp_path / "no-valid-quarter.json"
    source.write_text(json.dumps({"train": [up, up[::-1]], "valid": []}))
    out = tmp_path / "prepared"
    assert cli.main(["prepare", str(source), "--out", str(out), "--steps-per-quarter", "1",
                     "--lowest-pitch", "21", "--num-notes", "88"]) == 0
    capsys.readouterr()
    code = cli.main(["train", "--data", str(out), "--out", str(tmp_path / "run"), "--epochs", "1",
                     "--window", "8"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"biax train: error: {out} has no pieces in its valid split; prepare it again "
                   f"from more pieces (its report.json lists the files that were skipped and why)"]
    assert not (tmp_path / "run").exists()
