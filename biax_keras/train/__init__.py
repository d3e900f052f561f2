"""Training: `model.fit` on prepared data, with the callbacks a run needs.

- `config`: `TrainConfig`, a run's config read and resolved once
- `loop`: `train`, the run itself
- `callbacks`, `summaries`: resumed counters, averaged weights, epoch times;
  TensorBoard's pictures, sounds and hparams
- `distribute`: tf.distribute strategies and a multi-worker cluster
- `runs`: what a run folder holds and whether it may be written

    from biax_keras import train
    report = train.train("data/bach", "runs/bach", "training/configs/tiny.json")
"""

from biax_keras.train.config import TrainConfig, read_config, resolve_config
from biax_keras.train.loop import format_report, train

__all__ = ["TrainConfig", "format_report", "read_config", "resolve_config", "train"]
