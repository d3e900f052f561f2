"""`make demo` as written in the Makefile: a piano WAV one can hear and a piano roll one can read."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from biax_keras.music import audio, pictures

# Training recipes, subprocesses and shipped models: the slow tier (`make test-all`).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def demo_commands():
    """The recipe of the Makefile's `demo` target, with its variables filled in."""
    makefile = (ROOT / "Makefile").read_text()
    variables = {"BIN": str(Path(sys.executable).parent),
                 "DEMO_MODEL": str(ROOT / "saved_models" / "bach")}
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    commands = []
    for line in recipe.splitlines():
        line = re.sub(r"\$\((\w+)\)", lambda m: variables[m.group(1)], line.strip())
        commands.append(shlex.split(line))
    return commands


@pytest.mark.skipif(not audio.soundfont_synth_available(),
                    reason="the midirenderer wheel is not installed")
def test_make_demo_writes_a_piano_wav_and_a_readable_png(tmp_path):
    commands = demo_commands()
    assert any("generate" in c for c in commands) and any("render" in c for c in commands)
    printed = []
    for command in commands:
        if "prepare" in command:  # the Bach data for training; `biax prepare` has its own tests
            continue
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                  [str(ROOT), os.environ.get("PYTHONPATH", "")])})
        assert done.returncode == 0, done.stderr
        printed.append(done.stdout)
    out = tmp_path / "out"
    for name in ("demo.mid", "demo.wav", "demo.png"):
        assert (out / name).is_file() and f"out/{name}" in "".join(printed), name
    assert "SINE" not in "".join(printed)

    samples, rate = audio.read_wav(str(out / "demo.wav"))
    assert 29.5 <= len(samples) / rate <= 33
    mono = samples.mean(axis=1).astype(np.float64)
    assert np.sqrt(np.mean(mono ** 2)) > 0.05  # well above silence
    # Not sine waves: sine tones of chorale pitches (below 1 kHz) put next to
    # nothing above 1.5 kHz (1.5e-5 of the energy, benchmarks/audio.py); a
    # piano's overtones put 3% there.
    power = np.abs(np.fft.rfft(mono)) ** 2
    frequencies = np.fft.rfftfreq(len(mono), 1 / rate)
    assert power[frequencies > 1500].sum() / power.sum() > 0.005

    from matplotlib import image

    picture = image.imread(out / "demo.png")[..., :3]
    assert 1200 <= picture.shape[1] <= 2000 and 250 <= picture.shape[0] <= 600
    colours = {tuple(np.round(c, 2)) for c in picture.reshape(-1, 3)[::7]}
    assert tuple(np.round(pictures._STRUCK, 2)) in colours or any(
        np.abs(np.array(c) - pictures._STRUCK).max() < 0.02 for c in colours)
    assert any(np.abs(np.array(c) - pictures._HELD).max() < 0.02 for c in colours)


def test_make_demo_prepares_once_and_runs_again(tmp_path):
    # `biax prepare` refuses to replace a prepared dataset, so the recipe
    # prepares only when there is none: a second `make demo` must not fail.
    [line] = [line for line in (ROOT / "Makefile").read_text().split("\ndemo:", 1)[1]
              .split("\n\n", 1)[0].splitlines() if "prepare" in line]
    line = line.strip().replace("$(BIN)", str(Path(sys.executable).parent))
    for attempt in (1, 2):
        done = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, (attempt, done.stderr)
        assert (tmp_path / "data" / "bach" / "meta.json").is_file()
        assert ("Read " in done.stdout) == (attempt == 1)
