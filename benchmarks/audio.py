"""How fast each installed synthesizer plays a MIDI file, and what it sounds like in numbers.

    .venv/bin/python benchmarks/audio.py out/demo.mid [--repeats 5]

For each synthesizer `biax render` can use here (the midirenderer soundfont
synthesizer, FluidSynth, sine waves) it reports the median wall time of
`audio.synthesize` over the repeats, the audio's length, its RMS level
after normalization and the share of its energy above 1.5 kHz (overtones: a
piano has them, sine waves of chorale pitches have next to none). One JSON
object on stdout.
"""

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from biax_keras.music import audio  # noqa: E402


def measure(midi, synth, repeats):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        samples, rate, used = audio.synthesize(midi, synth)
        times.append(time.perf_counter() - started)
    mono = samples.mean(axis=1).astype(np.float64)
    power = np.abs(np.fft.rfft(mono)) ** 2
    frequencies = np.fft.rfftfreq(len(mono), 1 / rate)
    return {
        "synth": used,
        "median_seconds": round(statistics.median(times), 3),
        "runs": [round(t, 3) for t in times],
        "audio_seconds": round(len(samples) / rate, 2),
        "rate": rate,
        "channels": samples.shape[1],
        "rms": round(float(np.sqrt(np.mean(mono ** 2))), 4),
        "energy_above_1500_hz": float(power[frequencies > 1500].sum() / power.sum()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("midi")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    synths = ["sine"]
    if audio.soundfont_synth_available():
        synths.insert(0, "soundfont")
    if audio.fluidsynth_available():
        synths.insert(1, "fluidsynth")
    result = {
        "midi": args.midi,
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.node()} {platform.machine()}, {platform.python_version()}",
        "synths": [measure(args.midi, synth, args.repeats) for synth in synths],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
