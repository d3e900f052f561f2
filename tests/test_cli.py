"""The `biax` command line as a whole: --version and --help, checks made before
TensorFlow starts, output folders, hints that name real flags, and the
custom Keras classes registered the way the model cards say.
"""

import json
import os
import re
import subprocess
import sys
import textwrap
import wave
from pathlib import Path

import pytest

import biax_keras
from biax_keras.app import cli
from biax_keras.app import render as render_command
from biax_keras.music import audio

ROOT = Path(__file__).resolve().parents[1]
SAVED_MODELS = sorted(p for p in (ROOT / "saved_models").iterdir() if (p / "model.keras").is_file())


def _run(*args, timeout=300):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def _flags_of(command):
    """Every option string `biax COMMAND` accepts."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {s for action in sub._actions for s in action.option_strings}


def _flags_named(text):
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", text))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from biax_keras.nn.model import BiaxialConfig, build_model

    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    build_model(BiaxialConfig(time_units=(6,), note_units=(5,), lowest_pitch=48,
                              num_notes=20)).save(path)
    return path


# ----------------------------------------------------------------------------
# --version, --help
# ----------------------------------------------------------------------------


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"biax {biax_keras.__version__}"


@pytest.mark.parametrize("command, shown", [
    ("generate", ["--bpm BPM", "the primer's, else 120", "(default: 0)"]),
    ("prepare", ["(default: 78)", "(default: 24)", "(default: 0.8,0.1,0.1)",
                 "(default: 4, 16th notes, for MIDI; for a JSB .json/.pickle file its own"]),
    ("render", ["(default: auto)"]),
    ("train", ["(default: 100, unless --config sets it)", "(default: 10, unless",
               "(default: 128, unless", "(default: 0.001, unless",
               "(default: none, every epoch is trained, unless", "data stream (default: 0, unless"]),
])
def test_help_shows_defaults(command, shown, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in shown:
        assert words in text
    assert "(default: None)" not in text and "(default: False)" not in text


# ----------------------------------------------------------------------------
# Paths are checked before TensorFlow is imported
# ----------------------------------------------------------------------------

_CHECK_SCRIPT = textwrap.dedent("""
    import json, sys
    from biax_keras.app import cli
    codes = [cli.main(argv) for argv in json.loads(sys.argv[1])]
    print(json.dumps({"codes": codes, "tensorflow": "tensorflow" in sys.modules}))
""")


@pytest.mark.slow
def test_bad_paths_are_refused_before_tensorflow_starts(tmp_path):
    model = tmp_path / "m.keras"
    model.write_text("only its name is looked at before loading")
    (tmp_path / "file").write_text("a file, not a folder")
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "meta.json").write_text("{}")
    (prepared / "report.json").write_text(json.dumps({"pieces": {"train": 3}, "source": "bach"}))
    finished = tmp_path / "finished"
    finished.mkdir()
    for name in ("config.json", "model.keras", "history.csv"):
        (finished / name).write_text("")
    unfinished = tmp_path / "unfinished"
    (unfinished / "checkpoints").mkdir(parents=True)
    (unfinished / "checkpoints" / "best.keras").write_text("")
    missing = str(tmp_path / "missing")
    cases = [
        (["generate", "--model", str(unfinished), "--out", "x.mid"],
         f"its best model so far is {unfinished / 'checkpoints' / 'best.keras'}"),
        (["generate", "--model", missing, "--out", "x.mid"], "does not exist"),
        (["generate", "--model", str(model), "--out", str(tmp_path / "x.wav")], ".mid"),
        (["generate", "--model", str(model), "--out", str(tmp_path / "file" / "x.mid")], "is a file"),
        (["generate", "--model", str(model), "--out", "x.mid", "--primer", missing], "primer"),
        (["export", "--model", missing, "--out", str(tmp_path / "e")], "does not exist"),
        (["export", "--model", str(model), "--out", str(tmp_path / "file")], "already exists"),
        (["evaluate", "--model", str(model), "--data", missing], "does not exist"),
        (["evaluate", "--generated", missing, "--reference", missing], "does not exist"),
        (["train", "--data", missing, "--out", str(tmp_path / "run")], "not a prepared dataset"),
        (["train", "--data", str(prepared), "--out", str(finished)], "finished run"),
        (["prepare", missing, "--out", str(tmp_path / "d")], "does not exist"),
        (["prepare", "bach", "--out", str(prepared)], "3 pieces from bach"),
    ]
    done = _run("-c", _CHECK_SCRIPT, json.dumps([argv for argv, _ in cases]), timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    lines = done.stderr.strip().splitlines()
    assert result["codes"] == [2] * len(cases) and len(lines) == len(cases), done.stderr
    for (argv, words), line in zip(cases, lines):
        assert words in line, (argv, line)
    assert result["tensorflow"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "finished", "m.keras", "prepared",
                                                          "unfinished"]


# ----------------------------------------------------------------------------
# Every command creates the folders its outputs go into
# ----------------------------------------------------------------------------


def test_export_creates_missing_folders(tiny_model, tmp_path, capsys):
    out = tmp_path / "exported" / "mine"
    assert cli.main(["export", "--model", str(tiny_model), "--out", str(out)]) == 0
    assert (out / "saved_model.pb").is_file()
    assert f"wrote {out}" in capsys.readouterr().out


def test_evaluate_plot_creates_its_folder_and_says_so(write_midi, tmp_path, capsys):
    write_midi("gen/a.mid")
    write_midi("ref/b.mid", [(62, 0, 2), (65, 2, 4)])
    plot = tmp_path / "plots" / "new" / "stats.png"
    assert cli.main(["evaluate", "--generated", str(tmp_path / "gen"),
                     "--reference", str(tmp_path / "ref"), "--plot", str(plot)]) == 0
    assert f"wrote {plot}" in capsys.readouterr().out
    mask = os.umask(0)
    os.umask(mask)
    assert plot.stat().st_mode & 0o777 == 0o666 & ~mask


# ----------------------------------------------------------------------------
# Hints name flags that exist
# ----------------------------------------------------------------------------


def test_a_too_long_primer_names_no_flag_generate_lacks(tiny_model, write_midi, tmp_path, capsys):
    far = write_midi("far.mid", [(60, 0, 1), (60, 4_000_000, 4_000_001)])
    code = cli.main(["generate", "--model", str(tiny_model), "--out", str(tmp_path / "o.mid"),
                     "--steps", "4", "--primer", str(far)])
    line = capsys.readouterr().err.strip()
    assert code == 2 and "too long" in line
    assert _flags_named(line) <= _flags_of("generate"), line


def test_render_skip_reasons_name_no_flag_render_lacks(write_midi, tmp_path):
    write_midi("ok.mid")
    write_midi("far.mid", [(60, 0, 1), (60, 4_000_000, 4_000_001)])
    result = render_command.render([tmp_path], to=("png",))
    reason, = [s["reason"] for s in result["skipped"]]
    assert "too long" in reason and _flags_named(reason) <= _flags_of("render"), reason


def test_prepare_skip_reasons_still_say_which_flag_keeps_the_piece(write_midi, tmp_path):
    from biax_keras import data

    write_midi("midi/ok.mid")
    write_midi("midi/far.mid", [(60, 0, 1), (60, 4_000_000, 4_000_001)])
    report = data.prepare(tmp_path / "midi", tmp_path / "out", workers=1)
    reason, = [s["reason"] for s in report["skipped"]]
    assert "--max-steps" in reason and _flags_named(reason) <= _flags_of("prepare")


def _jsb_file(path, steps=8):
    piece = [[60, 64, 67] if t % 4 else [62] for t in range(steps)]
    path.write_text(json.dumps({"train": [piece, piece], "valid": [piece], "test": [piece]}))
    return path


def _exported_stand_in(folder, config):
    """What `biax export` writes that the checks before TensorFlow read (not a real SavedModel)."""
    from biax_keras.generation import export

    (folder / "assets.extra").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"")
    (folder / export.CONFIG_FILE).write_text(json.dumps(
        {"format": export.EXPORT_FORMAT, "config": config.to_dict()}))
    return folder


@pytest.mark.slow
def test_checks_that_need_no_tensorflow_are_made_before_it_starts(tmp_path, write_midi):
    """What the model's config, a file's name or the flags tell is said in a
    fraction of a second: TensorFlow is never imported for these refusals."""
    bach = ROOT / "saved_models" / "bach"
    existing = tmp_path / "mine.mid"
    existing.write_bytes(b"my own theme")
    (tmp_path / "mine-2.mid").write_bytes(b"my second theme")
    (tmp_path / "mine.wav").write_bytes(b"my own recording")
    waltz = write_midi("waltz.mid", [(60, 0, 3), (64, 3, 6)], time_signature=(3, 4))
    rest = write_midi("rest.mid", [(60, 1, 2)])
    exported = _exported_stand_in(tmp_path / "exported", biax_keras.model_config(bach))
    empty = tmp_path / "empty"
    empty.mkdir()
    out = str(tmp_path / "new.mid")
    cases = [
        (["generate", "--model", str(bach), "--out", str(existing)], "mine.mid already exists"),
        (["generate", "--model", str(bach), "--out", str(existing), "--num-samples", "2"],
         "mine-2.mid already exists"),
        (["generate", "--model", str(bach), "--out", out, "--primer-seconds", "4"],
         "go with --primer"),
        (["generate", "--model", str(bach), "--out", out, "--only-new"], "go with --primer"),
        (["generate", "--model", str(bach), "--out", out, "--primer", str(rest),
          "--primer-seconds", "0.1"], "is silent: a rest before its first note"),
        (["generate", "--model", str(exported), "--out", out, "--primer", str(waltz)],
         "generates in 4/4 only, not 3/4"),
        (["generate", "--model", str(tmp_path / "mine.mid"), "--out", out], "not a model"),
        (["prepare", str(tmp_path), "--out", str(tmp_path / "d"), "--split", "0.5,0.5"],
         "three fractions"),
        (["prepare", str(empty), "--out", str(tmp_path / "d")], "no MIDI files"),
        (["prepare", str(_jsb_file(tmp_path / "chorales.json")), "--out", str(tmp_path / "d")],
         "does not say its time resolution"),
        (["evaluate", "--model", str(bach), "--data",
          str(_jsb_file(tmp_path / "jsb-quarter.json"))], "at quarter notes and the model at 16th"),
        (["evaluate", "--model", str(bach), "--data", str(_jsb_file(tmp_path / "jsb-16th.json"))],
         "has no articulation"),
    ]
    refused = [argv for argv, _ in cases]
    done = _run("-c", _CHECK_SCRIPT, json.dumps(refused), timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    lines = done.stderr.strip().splitlines()
    assert result["codes"] == [2] * len(refused) and len(lines) == len(refused), done.stderr
    for (argv, words), line in zip(cases, lines):
        assert words in line, (argv, line)
    assert result["tensorflow"] is False
    assert existing.read_bytes() == b"my own theme" and not (tmp_path / "d").exists()


@pytest.mark.slow
def test_importing_the_package_prints_nothing():
    done = _run("-c", "import biax_keras; from biax_keras import representation, data; "
                      "from biax_keras.music import audio, pictures, statistics")
    assert done.returncode == 0 and done.stderr == "" and done.stdout == ""


# ----------------------------------------------------------------------------
# generate never replaces a file unless asked
# ----------------------------------------------------------------------------


def test_generate_refuses_to_replace_files_unless_overwrite(tiny_model, tmp_path, capsys):
    mine = tmp_path / "my-own-theme.mid"
    mine.write_bytes(b"the user's own music")
    (tmp_path / "set-1.mid").write_bytes(b"one")
    (tmp_path / "take.wav").write_bytes(b"a recording")
    for argv, named in [(["--out", str(mine)], mine),
                        (["--out", str(tmp_path / "set.mid"), "--num-samples", "2"],
                         tmp_path / "set-1.mid"),
                        (["--out", str(tmp_path / "take.mid"), "--wav"], tmp_path / "take.wav")]:
        code = cli.main(["generate", "--model", str(tiny_model), "--steps", "8", *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and f"{named} already exists" in err[0], err
        assert "--overwrite" in err[0]
    assert mine.read_bytes() == b"the user's own music" and not (tmp_path / "take.mid").exists()
    assert not (tmp_path / "set-2.mid").exists()
    code = cli.main(["generate", "--model", str(tiny_model), "--steps", "8", "--out", str(mine),
                     "--overwrite"])
    assert code == 0 and mine.read_bytes()[:4] == b"MThd"


# ----------------------------------------------------------------------------
# --wav never loses the composition
# ----------------------------------------------------------------------------


def test_ctrl_c_while_rendering_names_the_files_finished(tiny_model, tmp_path, capsys,
                                                         monkeypatch):
    calls = []

    def render_then_interrupt(midi, wav, *args, **kwargs):
        calls.append(wav)
        if len(calls) == 2:
            raise KeyboardInterrupt
        Path(wav).write_bytes(b"RIFF")

    monkeypatch.setattr(audio, "render_wav", render_then_interrupt)
    code = cli.main(["generate", "--model", str(tiny_model), "--out", str(tmp_path / "p.mid"),
                     "--steps", "16", "--num-samples", "2", "--wav"])
    line, = capsys.readouterr().err.strip().splitlines()
    assert code == 130 and line.startswith("biax generate: interrupted; finished ")
    for name in ("p-1.mid", "p-2.mid", "p-1.wav"):
        assert str(tmp_path / name) in line
    assert f"render the rest later with `biax render {tmp_path / 'p-2.mid'}`" in line


def test_generate_wav_without_a_synthesizer_writes_the_midi_and_sine_audio(
        tiny_model, tmp_path, capsys, caplog, monkeypatch):
    pytest.importorskip("pretty_midi")
    monkeypatch.setattr(audio, "soundfont_synth_available", lambda: False)
    monkeypatch.setattr(audio, "fluidsynth_available", lambda: False)
    out = tmp_path / "piece.mid"
    code = cli.main(["generate", "--model", str(tiny_model), "--out", str(out), "--steps", "16",
                     "--wav", "--json"])
    assert code == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert report["synth"] == "sine" and "SINE WAVES" in caplog.text
    assert out.is_file() and report["pieces"][0]["wav"] == str(tmp_path / "piece.wav")
    with wave.open(str(tmp_path / "piece.wav")) as f:
        assert f.getnframes() > 0


def test_generate_wav_failure_keeps_the_midi_and_says_where(tiny_model, tmp_path, capsys,
                                                           monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the synthesizer fell over")

    monkeypatch.setattr(audio, "render_wav", broken)
    out = tmp_path / "piece.mid"
    code = cli.main(["generate", "--model", str(tiny_model), "--out", str(out), "--steps", "16",
                     "--num-samples", "2", "--wav"])
    line, = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert (tmp_path / "piece-1.mid").is_file() and (tmp_path / "piece-2.mid").is_file()
    assert f"wrote {tmp_path / 'piece-1.mid'}, {tmp_path / 'piece-2.mid'}" in line
    assert "fell over" in line and f"biax render {tmp_path / 'piece-1.mid'}" in line


# ----------------------------------------------------------------------------
# The model cards' promise, typed as they write it, in a fresh process
# ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("first", ["biax_keras", "keras"])
@pytest.mark.parametrize("folder", SAVED_MODELS, ids=[p.name for p in SAVED_MODELS])
def test_keras_load_model_safe_mode_after_import_biax_keras(folder, first):
    imports = "import biax_keras\nimport keras" if first == "biax_keras" else \
        "import keras\nimport biax_keras"
    script = textwrap.dedent(f"""
        import sys
        {imports.splitlines()[0]}
        light = "tensorflow" not in sys.modules
        {imports.splitlines()[1]}
        model = keras.saving.load_model(sys.argv[1], safe_mode=True)
        print(type(model).__name__, model.config.num_notes, light)
    """)
    done = _run("-c", script, str(folder / "model.keras"))
    assert done.returncode == 0, done.stderr[-2000:]
    name, notes, light = done.stdout.split()
    assert name == "BiaxialModel"
    assert int(notes) == json.loads((folder / "config.json").read_text())["model"]["num_notes"]
    if first == "biax_keras":
        assert light == "True"  # `import biax_keras` alone does not start TensorFlow


# ----------------------------------------------------------------------------
# The XLA compilation cache of the command line
# ----------------------------------------------------------------------------


def test_xla_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(cli.XLA_CACHE_ENV, str(tmp_path / "mine"))
    assert cli.xla_cache_folder() == str(tmp_path / "mine")
    monkeypatch.setenv(cli.XLA_CACHE_ENV, "")
    assert cli.xla_cache_folder() is None
    monkeypatch.delenv(cli.XLA_CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert cli.xla_cache_folder().startswith(str(tmp_path / "cache" / "biax_keras" / "xla-tf"))


@pytest.mark.slow
def test_generate_reuses_compiled_programs_and_composes_the_same(tiny_model, tmp_path):
    cache = tmp_path / "xla"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **{cli.XLA_CACHE_ENV: str(cache)})
    pieces = []
    for run in ("cold", "warm"):
        out = tmp_path / f"{run}.mid"
        done = subprocess.run([sys.executable, "-m", "biax_keras.app.cli", "generate", "--model",
                               str(tiny_model), "--out", str(out), "--steps", "32", "--seed", "5"],
                              capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        if run == "cold":
            compiled = sorted(p.name for p in cache.iterdir())
            assert compiled, "nothing was kept in the XLA cache"
        pieces.append(out.read_bytes())
    assert sorted(p.name for p in cache.iterdir()) == compiled  # reused, not compiled again
    assert pieces[0] == pieces[1]
