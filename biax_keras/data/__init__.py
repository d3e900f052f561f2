"""Data: sources -> prepared TFRecords -> tf.data pipelines.

- `sources`, `music21_corpus`: what `biax prepare` reads, listed as tasks
- `readers`: reading pieces in bounded worker processes
- `preparation`: `prepare`, a source into a prepared folder, streaming
- `records`: the prepared folder on disk (shards, meta, lengths, report)
- `pipeline`: `make_dataset`, a prepared split as batches for `model.fit`;
  `make_mixed_dataset`, several of them as one stream tagged with their styles
- `beam`: `prepare` as an Apache Beam pipeline

The names below are the stage's API (`from biax_keras import data;
data.prepare(...)`). Importing it does not import TensorFlow.
"""

from biax_keras.data.pipeline import make_dataset, make_mixed_dataset, usable_pieces
from biax_keras.data.preparation import assign_splits, format_report, prepare
from biax_keras.data.records import (
           SPLITS,
           dataset_style,
           load_meta,
           piece_lengths,
           read_pieces,
           split_files,
)

__all__ = ["SPLITS", "assign_splits", "format_report", "load_meta", "make_dataset",
           "make_mixed_dataset", "dataset_style",
           "piece_lengths", "prepare", "read_pieces", "split_files", "usable_pieces"]
