"""The callbacks a run needs beyond Keras's own: resumed plateau counters,
the averaged weights (EMA) swapped in for validation and saving, and each
epoch's wall time.
"""

import csv
import time

from biax_keras.train import runs


def _history_rows(path):
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def _plateau_so_far(run_dir, before_epoch, key="val_frame_nll"):
    """`(best, epochs since it)` of `key` over history.csv's epochs before `before_epoch`.

    A resumed run's checkpointing, early stopping and learning-rate decay
    count from these, rather than forgetting the epochs before the resume.
    """
    values = runs.valid_history(run_dir, key)
    best, wait = None, 0
    for epoch in sorted(e for e in values if e < before_epoch):
        if best is None or values[epoch] < best:
            best, wait = values[epoch], 0
        else:
            wait += 1
    return best, wait


def _resumed(callback_class, plateau):
    """`callback_class` (EarlyStopping, ReduceLROnPlateau) starting from `plateau`.

    Both forget their best value and their count of epochs without it at the
    start of `fit`; a resumed run gives them back what history.csv says.
    ReduceLROnPlateau starts its count again after each reduction (we use no
    cooldown), so its count is the epochs since the best modulo its patience:
    the reductions already made are not made again at the resume.
    """
    import keras

    best, wait = plateau
    decays = issubclass(callback_class, keras.callbacks.ReduceLROnPlateau)

    class Resumed(callback_class):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if best is not None:
                self.best = best
                self.wait = wait % self.patience if decays else wait

    Resumed.__name__ = callback_class.__name__
    return Resumed


def _epoch_times(path):
    """A callback appending `epoch,seconds` to `path` as each epoch ends.

    The run's training time is their sum (`runs.training_seconds`) over as
    many sittings as it took; Keras's CSVLogger keeps no times, and a column
    added to history.csv would not line up with a resumed run's older rows.
    """
    import keras

    class EpochTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            new = not path.exists()
            with open(path, "a", newline="") as f:
                rows = csv.writer(f)
                if new:
                    rows.writerow(["epoch", "seconds"])
                rows.writerow([epoch, f"{time.monotonic() - self._started:.2f}"])

    return EpochTimes()


def _ema_callbacks():
    """Two callbacks that put the optimizer's averaged weights in the model.

    The first swaps the average in when validation begins and leaves it there
    through the epoch's records (checkpoint, history, images, early
    stopping); the second, placed before the backup, swaps the trained
    weights back so that the backup (and the next epoch) carries on training
    them. Keras's SwapEMAWeights swaps back only when the next epoch begins,
    after the backup has saved the average as if it were the trained weights.
    """
    import keras

    class AverageIn(keras.callbacks.SwapEMAWeights):
        def __init__(self):
            super().__init__(swap_on_epoch=False)

        def on_test_end(self, logs=None):
            pass  # the average stays for the epoch's records

        def on_epoch_end(self, epoch, logs=None):
            self.on_test_begin()  # an epoch without validation still records the average

        def swap_out(self):
            if self._ema_weights_in_model:
                self._swap_variables()
                self._ema_weights_in_model = False

    average_in = AverageIn()

    class AverageOut(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            average_in.swap_out()

        def on_train_end(self, logs=None):
            average_in.swap_out()

    return average_in, AverageOut()
