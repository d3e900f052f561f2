"""The pretrained models shipped in saved_models/: `make demo` composes with one."""

from pathlib import Path

import numpy as np
import pytest

import biax_keras

SAVED = Path(__file__).resolve().parent.parent / "saved_models"
SHIPPED = {
    # folder: (lowest pitch, notes, steps per quarter, play only)
    "bach": (24, 78, 4, False),
    "jsb_chorales": (21, 88, 1, True),
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_loads_and_composes(name):
    folder = SAVED / name
    assert (folder / "MODEL_CARD.md").is_file()
    model = biax_keras.load_model(folder)
    config = model.config
    lowest, notes, per_quarter, play_only = SHIPPED[name]
    assert (config.lowest_pitch, config.num_notes, config.steps_per_quarter,
            config.play_only) == (lowest, notes, per_quarter, play_only)
    roll = biax_keras.generate(model, steps=16, seed=1)
    assert roll.shape == (16, notes, 2) and roll.dtype == np.uint8
    assert np.all(roll[..., 1] <= roll[..., 0])
