"""biax studio: compose, look, listen and download on a local page; bad input never a traceback."""

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import browser
import numpy as np
import pytest
from conftest import PHRASE, midi_bytes

from biax_keras.app import cli, studio
from biax_keras.music import audio
from biax_keras.nn.model import BiaxialConfig, build_model

ROOT = Path(__file__).resolve().parents[1]
# A small model of the shipped Bach model's range and grid: quick to trace and run.
CONFIG = BiaxialConfig(time_units=(12,), note_units=(8,), lowest_pitch=24, num_notes=78)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("studio_model") / "tiny.keras"
    model = build_model(CONFIG, compile=False)
    rng = np.random.default_rng(0)
    for variable in model.weights:  # random weights, so the piece has notes
        variable.assign(rng.normal(0.0, 0.6, variable.shape).astype("float32"))
    model.save(path)
    return path


@pytest.fixture
def server(tiny_model, tmp_path, monkeypatch):
    """A studio on a free port, its temporary folder under tmp_path/tmp, run from tmp_path/cwd."""
    (tmp_path / "tmp").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    monkeypatch.chdir(tmp_path / "cwd")
    http, state = studio.make_server({"tiny": str(tiny_model)}, port=0)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_address[1]}", state
    http.shutdown()
    http.server_close()


def post(url, body):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url + "/api/compose", data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def get(url):
    with urllib.request.urlopen(url, timeout=60) as answer:
        return answer.status, answer.headers["Content-Type"], answer.read()


SETTINGS = {"model": "tiny", "seconds": "2", "temperature": "1", "conservativity": "1", "seed": "3"}


def test_compose_continue_and_download(server, tmp_path):
    url, state = server
    status, models = get(url + "/api/models")[0], json.loads(get(url + "/api/models")[2])
    assert status == 200 and [m["name"] for m in models["models"]] == ["tiny"]
    assert b"Compose" in get(url + "/")[2]

    status, piece = post(url, SETTINGS)
    assert status == 200, piece
    assert piece["seconds"] == 2.0 and piece["primer_steps"] == 0 and piece["notes"] > 0
    kinds = {name: get(url + path) for name, path in piece["files"].items()}
    assert kinds["roll.png"][1] == "image/png" and kinds["roll.png"][2][:4] == b"\x89PNG"
    assert kinds["piece.mid"][2][:4] == b"MThd"
    assert kinds["piece.wav"][1] == "audio/wav"
    wav = tmp_path / "downloaded.wav"
    wav.write_bytes(kinds["piece.wav"][2])
    samples, _ = audio.read_wav(str(wav))
    assert np.sqrt(np.mean(samples ** 2)) > 0.01  # sound, not silence

    status, longer = post(url, {**SETTINGS, "continue": piece["piece"]})
    assert status == 200, longer
    assert longer["primer_steps"] == 16 and longer["seconds"] == 4.0  # 2 s + 2 s at 120 bpm
    # Only the studio's own temporary folder was written to (beside the code
    # TensorFlow generates in this test process; `biax studio` keeps that in
    # its folder too, see the browser test).
    assert not list((tmp_path / "cwd").iterdir())
    assert [p.name for p in (tmp_path / "tmp").iterdir()
            if not p.name.startswith("__autograph_generated_file")] == [state.folder.name]
    written = {p.relative_to(state.folder).as_posix() for p in state.folder.rglob("*") if p.is_file()}
    assert written == {f"{p}/{name}" for p in (piece["piece"], longer["piece"]) for name in studio.FILES}


def primer(data, name="primer.mid"):
    return {"name": name, "data": base64.b64encode(data).decode()}


@pytest.mark.parametrize("change, message", [
    ({"seconds": "abc"}, "seconds must be a number from 0.5 to 120, got 'abc'"),
    ({"seconds": "0"}, "seconds must be from 0.5 to 120"),
    ({"seconds": "1e9"}, "seconds must be from 0.5 to 120"),
    ({"temperature": "-1"}, "temperature must be from 0.05 to 5"),
    ({"temperature": "nan"}, "temperature must be from"),
    ({"conservativity": ""}, "conservativity is missing"),
    ({"seed": "1.5"}, "the seed must be a whole number"),
    ({"model": "nope"}, "unknown model 'nope'"),
    ({"model_path": "/no/such/run"}, "does not exist"),
    ({"continue": "0123456789abcdef"}, "there is no piece to continue"),
    ({"primer": primer(b"hello, not MIDI", "notes.txt")}, "notes.txt cannot be used as a primer"),
    ({"primer": primer(b"")}, "primer.mid is empty"),
    ({"primer": primer(midi_bytes(PHRASE)[:40])}, "primer.mid cannot be used as a primer"),
    ({"primer": primer(midi_bytes([(10, 0, 4)]))}, "every note lies outside the model's range"),
    ({"primer": {"name": "x.mid", "data": "***"}}, "the primer upload is malformed"),
])
def test_bad_settings_and_uploads_get_one_clear_line(server, change, message):
    url, _ = server
    status, answer = post(url, {**SETTINGS, **change})
    assert status == 400 and message in answer["error"], answer
    assert "Traceback" not in answer["error"] and "\n" not in answer["error"]


def test_huge_and_broken_requests(server):
    url, _ = server
    big = {**SETTINGS, "primer": primer(b"M" * (studio.MAX_PRIMER_BYTES + 10), "big.mid")}
    status, answer = post(url, big)
    assert status == 400 and answer["error"] == "big.mid is larger than the 1024 KB limit for a primer"
    huge = {**SETTINGS, "primer": primer(b"M" * 2 * studio.MAX_PRIMER_BYTES, "huge.mid")}
    status, answer = post(url, huge)  # refused before it is read
    assert status == 413 and "larger than the 1024 KB limit" in answer["error"]
    status, answer = post(url, b"{not json")
    assert status == 400 and answer["error"] == "the request is not valid JSON"
    for path in ("/pieces/../../../etc/passwd", "/pieces/abc/piece.mid", "/etc/passwd"):
        with pytest.raises(urllib.error.HTTPError) as e:
            get(url + path)
        assert e.value.code == 404


def test_a_primer_is_continued(server):
    url, _ = server
    status, piece = post(url, {**SETTINGS, "primer": primer(midi_bytes(PHRASE))})
    assert status == 200, piece
    assert piece["primer_steps"] == 16 and piece["seconds"] == 4.0


def test_the_studio_composes_as_biax_generate_does(server, tiny_model, tmp_path, capsys):
    """A 60 bpm waltz primer stays a 60 bpm waltz: the studio and `biax generate`
    share one compose flow, so the same settings write the same file."""
    waltz = midi_bytes(PHRASE, tempo=1_000_000, time_signature=(3, 4))  # 4 quarters: 4 s
    url, state = server
    status, piece = post(url, {**SETTINGS, "seconds": "6", "primer": primer(waltz, "waltz.mid")})
    assert status == 200, piece
    assert piece["bpm"] == 60 and piece["time_signature"] == [3, 4]
    assert piece["primer_steps"] == 16 and piece["seconds"] == 10.0  # 4 s of primer + 6 s
    from_studio = get(url + piece["files"]["piece.mid"])[2]

    (tmp_path / "waltz.mid").write_bytes(waltz)
    out = tmp_path / "generated.mid"
    code = cli.main(["generate", "--model", str(tiny_model), "--out", str(out), "--seconds", "6",
                     "--seed", "3", "--primer", str(tmp_path / "waltz.mid"), "--json"])
    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["seconds"] == 10.0
    assert out.read_bytes() == from_studio

    status, longer = post(url, {**SETTINGS, "seconds": "3", "continue": piece["piece"]})
    assert status == 200 and longer["bpm"] == 60 and longer["time_signature"] == [3, 4]
    assert longer["primer_steps"] == 40 and longer["seconds"] == 13.0


def test_audio_answers_range_requests_and_dropped_connections_are_quiet(server, capsys):
    import socket

    url, _ = server
    status, piece = post(url, SETTINGS)
    assert status == 200, piece
    wav = url + piece["files"]["piece.wav"]
    with urllib.request.urlopen(wav, timeout=60) as whole:
        size = len(whole.read())
        assert whole.headers["Accept-Ranges"] == "bytes"
    request = urllib.request.Request(wav, headers={"Range": "bytes=100-199"})
    with urllib.request.urlopen(request, timeout=60) as part:
        assert part.status == 206 and part.headers["Content-Range"] == f"bytes 100-199/{size}"
        assert len(part.read()) == 100
    # A browser that gives up on a download mid-way: the connection is reset.
    host, port = url.removeprefix("http://").split(":")
    for _ in range(3):
        sock = socket.create_connection((host, int(port)))
        sock.sendall(f"GET {piece['files']['piece.wav']} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    time.sleep(0.5)
    assert get(url + "/api/models")[0] == 200
    err = capsys.readouterr().err
    assert "Traceback" not in err and "ConnectionResetError" not in err, err


def test_any_seed_the_command_line_takes_the_studio_takes(server):
    url, _ = server
    for seed in ("-1", str(2**40)):
        status, piece = post(url, {**SETTINGS, "seed": seed})
        assert status == 200, piece


@pytest.mark.parametrize("argv, message", [
    (["studio", "--model", "/no/such/model.keras"], "does not exist"),
    (["studio", "--port", "70000"], "a port is from 0 to 65535"),
])
def test_studio_command_errors(argv, message, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]


# ----------------------------------------------------------------------------
# In a real browser
# ----------------------------------------------------------------------------

DECODE_AUDIO = """
const done = arguments[arguments.length - 1];
fetch(document.getElementById("audio").src)
  .then((r) => r.arrayBuffer())
  .then((b) => new OfflineAudioContext(1, 48000, 48000).decodeAudioData(b))
  .then((audio) => {
    const x = audio.getChannelData(0);
    let sum = 0;
    for (let i = 0; i < x.length; i++) sum += x[i] * x[i];
    done({rms: Math.sqrt(sum / x.length), seconds: audio.duration});
  })
  .catch((e) => done({error: String(e)}));
"""


SEEKABLE = """
const done = arguments[arguments.length - 1];
const audio = document.getElementById("audio");
audio.preload = "auto";
const started = Date.now();
(function check() {
  if (audio.readyState >= 1 && audio.seekable.length) {
    audio.currentTime = 3;
    done({end: audio.seekable.end(0), at: audio.currentTime});
  } else if (Date.now() - started > 20000) {
    done({error: "not seekable", readyState: audio.readyState, ranges: audio.seekable.length});
  } else setTimeout(check, 100);
})();
"""


@pytest.fixture
def studio_process(tmp_path):
    """`biax studio --port 0` as a user starts it, in its own folder and TMPDIR."""
    yield from _studio(tmp_path)


def _studio(tmp_path, *flags):
    browser.require()  # before starting anything
    (tmp_path / "tmp").mkdir()
    (tmp_path / "cwd").mkdir()
    # XDG_CACHE_HOME: where other `biax` commands keep compiled XLA programs.
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("BIAX_XLA_CACHE", None)
    biax = Path(sys.executable).with_name("biax")
    command = [str(biax)] if biax.exists() else [sys.executable, "-m", "biax_keras.app.cli"]
    process = subprocess.Popen(command + ["studio", "--port", "0", *flags], cwd=tmp_path / "cwd",
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        assert found, (line, process.stderr.read() if process.poll() is not None else "")
        yield found.group(1), process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    # Stopped, the studio leaves nothing behind: not in its temp folder, not where it ran.
    assert not list((tmp_path / "tmp").iterdir()) and not list((tmp_path / "cwd").iterdir())
    assert not (tmp_path / "cache" / "biax_keras").exists()


def wait_for_status(driver, pattern, timeout=240):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: re.search(pattern, d.find_element("id", "status").text)
        or d.find_element("id", "error").text)
    return driver.find_element("id", "status").text, driver.find_element("id", "error").text


def wait_for_error(driver, timeout=120):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.find_element("id", "error").text)


@pytest.mark.slow
def test_the_page_composes_in_chromium(studio_process, tmp_path):
    url, _ = studio_process
    bad = tmp_path / "not_midi.mid"
    bad.write_bytes(b"this is not a MIDI file")
    with browser.chromium() as driver:
        driver.set_script_timeout(60)
        driver.get(url)
        from selenium.webdriver.support.ui import WebDriverWait

        models = WebDriverWait(driver, 30).until(  # the page asks for the list when loaded
            lambda d: [o.text for o in d.find_elements("css selector", "#model option")])
        assert "bach" in models
        seconds = driver.find_element("id", "seconds")
        seconds.clear()
        seconds.send_keys("6")
        driver.find_element("id", "compose").click()
        status, error = wait_for_status(driver, r"^composed")
        assert error == "" and status.startswith("composed 6 s"), (status, error)
        image = driver.find_element("id", "roll")
        assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) >= 400
        heard = driver.execute_async_script(DECODE_AUDIO)
        assert "error" not in heard and heard["rms"] > 0.01 and heard["seconds"] >= 6, heard
        seek = driver.execute_async_script(SEEKABLE)  # the player can jump into the piece
        assert "error" not in seek and seek["end"] >= 6 and seek["at"] == 3, seek
        if os.environ.get("BIAX_STUDIO_SCREENSHOT"):
            driver.save_screenshot(os.environ["BIAX_STUDIO_SCREENSHOT"])

        driver.find_element("id", "continue").click()
        status, error = wait_for_status(driver, r"^composed 12 s")
        assert error == "" and "steps of it the primer" in status, (status, error)

        driver.find_element("id", "primer").send_keys(str(bad))
        driver.find_element("id", "compose").click()
        error = wait_for_error(driver)
        assert "not_midi.mid cannot be used as a primer" in error and "Traceback" not in error

        driver.execute_script('document.getElementById("primer").value = ""')
        # Choosing a model sets the inputs to its own sampling controls.
        from selenium.webdriver.support.ui import Select

        temperature = driver.find_element("id", "temperature")
        from biax_keras import model_config

        own = model_config(ROOT / "saved_models" / "piano_midi_de").sampling["temperature"]
        assert own != 1
        Select(driver.find_element("id", "model")).select_by_visible_text("piano_midi_de")
        assert float(temperature.get_attribute("value")) == own
        Select(driver.find_element("id", "model")).select_by_visible_text("bach")
        assert temperature.get_attribute("value") == "1"
        assert not driver.find_element("id", "styles").is_displayed()  # no styles: no picker
        temperature.clear()
        temperature.send_keys("0")
        driver.find_element("id", "compose").click()
        error = wait_for_error(driver)
        assert "temperature must be from 0.05 to 5" in error


@pytest.mark.slow
def test_the_page_composes_a_blend_of_styles_in_chromium(tmp_path):
    """A style model's styles become the picker's, and a blend of two is composed."""
    import numpy as np

    from biax_keras.nn.model import BiaxialConfig, build_model

    model = build_model(BiaxialConfig(time_units=(8,), note_units=(8,), lowest_pitch=36,
                                      num_notes=24, styles=("folk", "chorale"),
                                      style_sampling={"chorale": {"temperature": 2.0}}),
                        compile=False)
    rng = np.random.default_rng(1)
    for variable in model.weights:
        variable.assign(rng.normal(0.0, 0.8, variable.shape).astype("float32"))
    model.save(tmp_path / "styles.keras")
    studio_dir = tmp_path / "studio"
    studio_dir.mkdir()
    process = _studio(studio_dir, "--model", str(tmp_path / "styles.keras"))
    url, _ = next(process)
    try:
        from selenium.webdriver.support.ui import Select, WebDriverWait

        with browser.chromium() as driver:
            driver.get(url)
            WebDriverWait(driver, 30).until(
                lambda d: [o.text for o in d.find_elements("css selector", "#style option")])
            assert driver.find_element("id", "styles").is_displayed()
            assert [o.text for o in driver.find_elements("css selector", "#style option")] == \
                ["folk", "chorale"]
            temperature = driver.find_element("id", "temperature")
            assert float(temperature.get_attribute("value")) == 1.0  # folk's: the model's
            Select(driver.find_element("id", "blend")).select_by_visible_text("chorale")
            # The blend's own controls: the mix of folk's 1 and chorale's 2.
            WebDriverWait(driver, 30).until(
                lambda d: float(temperature.get_attribute("value")) == 1.5)
            Select(driver.find_element("id", "style")).select_by_visible_text("chorale")
            WebDriverWait(driver, 30).until(
                lambda d: float(temperature.get_attribute("value")) == 2.0)
            Select(driver.find_element("id", "style")).select_by_visible_text("folk")
            WebDriverWait(driver, 30).until(
                lambda d: float(temperature.get_attribute("value")) == 1.5)
            seconds = driver.find_element("id", "seconds")
            seconds.clear()
            seconds.send_keys("3")
            assert driver.execute_script("return chosenStyle()") == "folk=0.50,chorale=0.50"
            driver.find_element("id", "compose").click()
            status, error = wait_for_status(driver, r"^composed")
            assert error == "" and status.startswith("composed 3 s"), (status, error)
    finally:
        next(process, None)
