"""Train a biaxial model with plain `model.fit`: the whole loop on one page.

    python training/train.py --data data/bach --epochs 5 --out bach.keras

`biax train` does the same and adds what a long run needs (a run folder,
checkpoints, resuming after a crash, piano rolls in TensorBoard). This
script shows the parts for people who write their own loop or notebook:
a config, a model, two `tf.data` pipelines and `fit`.
"""

import argparse
import json
import logging

import keras

from biax_keras import data
from biax_keras.nn.model import BiaxialConfig, build_model

log = logging.getLogger("train")


def main(argv=None):
    """Parse flags, train, save; returns the Keras `History`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a folder made by `biax prepare`")
    parser.add_argument("--config", help='JSON file; only its "model" section is used here')
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--logs", default=None, help="TensorBoard folder (optional)")
    parser.add_argument("--out", default="model.keras", help="where to save the trained model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    # The note range and resolution are the data's; the sizes come from the config.
    meta = data.load_meta(args.data)
    sizes = {}
    if args.config:
        with open(args.config) as f:
            sizes = json.load(f).get("model", {})
    for key in ("lowest_pitch", "num_notes", "steps_per_quarter", "play_only"):
        sizes[key] = meta[key]
    config = BiaxialConfig.from_dict(sizes)

    keras.utils.set_random_seed(0)
    model = build_model(config, learning_rate=args.learning_rate)
    log.info("%s parameters", f"{model.count_params():,}")

    # Each element is ({"roll", "beat", "target"}, target): fit needs nothing else.
    train = data.make_dataset(args.data, "train", window=args.window,
                              batch_size=args.batch_size, seed=0)
    valid = data.make_dataset(args.data, "valid", window=args.window,
                              batch_size=args.batch_size)
    callbacks = [keras.callbacks.TerminateOnNaN()]
    if args.logs:
        callbacks.append(keras.callbacks.TensorBoard(args.logs))
    # make_dataset shuffles and repeats the train split itself (shuffle=False
    # tells Keras so); the valid split is one pass of known length.
    history = model.fit(train, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                        validation_data=valid, callbacks=callbacks, verbose=2, shuffle=False)
    model.save(args.out)
    log.info("saved %s; valid frame NLL %.3f", args.out, history.history["val_frame_nll"][-1])
    return history


if __name__ == "__main__":
    main()
