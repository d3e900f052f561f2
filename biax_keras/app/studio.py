"""`biax studio`: a local page to compose, look, listen and download.

    biax studio                          # http://127.0.0.1:7860/, the shipped models
    biax studio --model runs/bach --port 8000

One picks a model (a shipped one, the --model given, or any run folder or
.keras file typed in), sets the length, the sampling controls and the seed,
optionally uploads a primer MIDI, and presses Compose: the page shows the
piano roll (`pictures.roll_image`), plays the piece (`audio.synthesize`: the
General MIDI piano) and offers the MIDI and WAV. Continue composes on from
the current piece. Composing is `compose.compose`, the flow `biax generate`
runs: a primer keeps its tempo and meter here as there.

The page is served by Werkzeug's WSGI server, the one TensorBoard serves
with (so it is installed already): it answers `Range:` requests, so the
browser can seek in the audio, and a browser that drops a connection costs
nothing but that connection. It listens on 127.0.0.1 unless told otherwise
and writes only in its own temporary folder, which it removes when it stops.
Everything a user sends is checked; a bad upload or setting is answered with
one clear line that the page shows, never a traceback.
"""

import base64
import binascii
import json
import logging
import math
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

from biax_keras.errors import UserError
from biax_keras.sampling_controls import SamplingControls

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
MAX_SECONDS = 120.0  # of new music per press
MAX_PRIMER_BYTES = 1024 * 1024
MAX_PRIMER_STEPS = 4000  # about 4 minutes at sixteenths and 120 bpm
MAX_PIECE_STEPS = 8000  # a piece continued again and again stops here
MAX_REQUEST_BYTES = 2 * MAX_PRIMER_BYTES  # the primer travels as base64 in JSON
KEPT_PIECES = 20  # older pieces' files are removed from the temporary folder
# The seed takes what `biax generate --seed` takes: any 64-bit whole number.
# The sampling controls' inputs come from `SamplingControls` itself (their
# names, ranges and help); the studio's own settings are these.
LIMITS = {"seconds": (0.5, MAX_SECONDS), "seed": (-2**63, 2**63 - 1)}
FILES = {"piece.mid": "audio/midi", "piece.wav": "audio/wav", "roll.png": "image/png"}
SHIPPED_MODELS = Path(__file__).resolve().parents[2] / "saved_models"


def shipped_models(folder=SHIPPED_MODELS):
    """`{name: path}` of the pretrained models in `saved_models/` (run folders)."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {p.name: str(p) for p in sorted(folder.iterdir()) if (p / "model.keras").is_file()}


class Studio:
    """What the page asks for: models, settings checked, pieces composed and kept.

    Args:
        models: `{name: path}` offered on the page, in order.
        folder: the temporary folder all files go to (created by the caller).
    """

    def __init__(self, models, folder):
        self.models = dict(models)
        self.folder = Path(folder)
        self.loaded = {}
        self.pieces = {}  # id -> {"composition", "model", "folder", "notes"}
        self.lock = threading.Lock()

    def model_list(self):
        """`[{"name", "path", "controls"}]`: `controls` are the model's own sampling
        controls, which the page sets when the model is chosen (None where its
        config cannot be read; composing with it then says why)."""
        import biax_keras

        listed = []
        for name, path in self.models.items():
            try:
                config = biax_keras.model_config(path)
                controls = config.sampling_controls().to_dict()
                names = list(config.styles) if config.styles else None
                by_style = bool(config.style_sampling)
            except UserError:
                controls = names = None
                by_style = False
            listed.append({"name": name, "path": path, "controls": controls, "styles": names,
                           "style_controls": by_style})
        return listed

    def own_controls(self, name, style):
        """A listed model's own sampling controls in a style or blend (`NAME=W,...`),
        which the page sets when the style is chosen (`BiaxialConfig.style_sampling`)."""
        import biax_keras
        from biax_keras.generation.styles import style_weights

        if name not in self.models:
            raise UserError(f"unknown model {name!r}; choose one of {', '.join(self.models)}")
        config = biax_keras.model_config(self.models[name])
        weights = style_weights(config, style or None)
        return config.sampling_controls(weights).to_dict()

    def _model(self, name, path):
        import biax_keras

        if path:
            key = os.path.abspath(os.path.expanduser(path))
        elif name in self.models:
            key = self.models[name]
        else:
            raise UserError(f"unknown model {name!r}; choose one of {', '.join(self.models)} "
                            "or type the path of a run folder or .keras file")
        if key not in self.loaded:
            self.loaded[key] = biax_keras.load_model(key)
        return key, self.loaded[key]

    def compose(self, request):
        """Compose from a page's request; return what the page shows.

        Raises:
            UserError: for any setting, model or upload that cannot be used.
        """
        from biax_keras.generation import compose, styles
        from biax_keras.music import audio, pictures

        if not isinstance(request, dict):
            raise UserError("the request must be a JSON object")
        seconds = _number(request.get("seconds"), "seconds", *LIMITS["seconds"])
        seed = _number(request.get("seed"), "seed", *LIMITS["seed"])
        if seed != int(seed):
            raise UserError(f"the seed must be a whole number, got {request.get('seed')}")
        SamplingControls.from_page(request)  # a setting out of range is said before loading
        with self.lock:
            key, model = self._model(request.get("model"), (request.get("model_path") or "").strip())
            style = request.get("style") or None
            if style is not None and not model.config.styles:
                style = None  # the page sends none for a model without styles; be lenient
            controls = SamplingControls.from_page(request, base=model.config.own_sampling(
                styles.style_weights(model.config, style)))
            primer = None
            previous = request.get("continue")
            if previous:
                piece = self.pieces.get(str(previous))
                if piece is None:
                    raise UserError("there is no piece to continue (it is too old or the studio "
                                    "was restarted); press Compose first")
                if piece["model"] != key:
                    raise UserError("Continue uses the model the piece was composed with; "
                                    "choose that model again or press Compose")
                primer = piece["composition"].as_primer()
            elif request.get("primer"):
                primer = _read_primer(request["primer"], model.config)
            steps = compose.length_in_steps(model.config, seconds=seconds,
                                            primer=primer)
            if primer is not None and len(primer.roll) + steps > MAX_PIECE_STEPS:
                raise UserError(f"the piece would be longer than {MAX_PIECE_STEPS} steps; "
                                "press Compose to start a new one")
            started = time.perf_counter()
            piece = compose.compose(model, steps=steps, seed=int(seed), controls=controls,
                                    primer=primer, style=style)
            compose_seconds = time.perf_counter() - started
            piece_id = secrets.token_hex(8)
            folder = self.folder / piece_id
            folder.mkdir()
            sequence = piece.write_midi(0, folder / "piece.mid")
            synth = audio.render_wav(folder / "piece.mid", folder / "piece.wav")
            meter = "/".join(map(str, piece.time_signature))
            titles = [f"{Path(key).name}: {piece.seconds():.1f} s at {piece.bpm:g} bpm in {meter}, "
                      f"seed {int(seed)}, " + _style_words(model.config, style)
                      + _changed_controls(controls)
                      + (f"; the first {piece.primer_steps} steps are the primer"
                         if piece.primer_steps else "")]
            pictures.save_png(pictures.roll_image(piece.rolls[0], titles=titles,
                                              lowest_pitch=piece.lowest_pitch, beats=[piece.beat]),
                            folder / "roll.png")
            self.pieces[piece_id] = {"composition": piece, "model": key, "folder": folder,
                                     "notes": len(sequence.notes)}
            self._forget_old_pieces()
        return {
            "piece": piece_id,
            "seconds": round(piece.seconds(), 2),
            "bpm": piece.bpm,
            "time_signature": list(piece.time_signature),
            "primer_steps": piece.primer_steps,
            "notes": len(sequence.notes),
            "compose_seconds": round(compose_seconds, 2),
            "synth": synth,
            "files": {name: f"/pieces/{piece_id}/{name}" for name in FILES},
        }

    def _forget_old_pieces(self):
        for old in list(self.pieces)[:-KEPT_PIECES]:
            shutil.rmtree(self.pieces.pop(old)["folder"], ignore_errors=True)

    def file(self, piece_id, name):
        """Path of a piece's file, or None (only files this studio wrote)."""
        piece = self.pieces.get(piece_id)
        if piece is None or name not in FILES:
            return None
        path = piece["folder"] / name
        return path if path.is_file() else None


def _style_words(config, style):
    """`"in piano_midi_de 0.7 + jsb_chorales 0.3, "` for a style model's piece."""
    from biax_keras.generation import styles

    if not config.styles:
        return ""
    return f"in {styles.describe(config, styles.style_weights(config, style))}, "


def _changed_controls(controls):
    """The controls not at their defaults, as a title says them."""
    defaults = SamplingControls.defaults()
    changed = [f"{name.replace('_', ' ')} {value:g}" if not isinstance(value, bool) else
               name.replace("_", " ") for name, value in controls.to_dict().items()
               if value != defaults[name]]
    return ", ".join(changed) or "default controls"


def control_inputs():
    """The page's inputs of the sampling controls, made from `SamplingControls`."""
    import html

    rows = []
    for control in SamplingControls.page_inputs():
        name, label = control["name"], control["name"].replace("_", " ").capitalize()
        title = html.escape(control["help"], quote=True)
        if control["type"] == "bool":
            checked = " checked" if control["default"] else ""
            rows.append(f'  <label title="{title}">{label} <input id="{name}" class="control" '
                        f'type="checkbox"{checked}></label>')
        else:
            step = "1" if control["type"] == "int" else "0.05"
            rows.append(f'  <label title="{title}">{label} <input id="{name}" class="control" '
                        f'type="number" value="{control["default"]}" min="{control["min"]:g}" '
                        f'max="{control["max"]:g}" step="{step}"></label>')
    return "\n".join(rows)


def _number(value, name, low, high):
    if isinstance(value, bool) or value is None or value == "":
        raise UserError(f"{name} is missing; give a number from {low:g} to {high:g}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise UserError(f"{name} must be from {low:g} to {high:g}, got {value}")
    return number


def _read_primer(upload, config):
    """The primer upload `{"name", "data": base64}` as a `primer.Primer` for the model."""
    from biax_keras.music.primer import read_primer

    name = str(upload.get("name") or "the primer") if isinstance(upload, dict) else "the primer"
    data = upload.get("data") if isinstance(upload, dict) else None
    if not isinstance(data, str):
        raise UserError("the primer upload is malformed; choose a .mid file again")
    if len(data) > MAX_PRIMER_BYTES * 4 // 3 + 4:
        raise UserError(f"{name} is larger than the {MAX_PRIMER_BYTES // 1024} KB limit for a primer")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise UserError("the primer upload is malformed; choose a .mid file again") from None
    return read_primer(name, config, data=raw, max_steps=MAX_PRIMER_STEPS)


class App:
    """The studio as a WSGI application (Werkzeug's requests and responses).

    Args:
        studio: the `Studio` that composes and keeps the pieces.
    """

    def __init__(self, studio):
        self.studio = studio

    def __call__(self, environ, start_response):
        from werkzeug.wrappers import Request

        request = Request(environ)
        return self.respond(request)(environ, start_response)

    def respond(self, request):
        from werkzeug.utils import send_file

        path = request.path
        if request.method in ("GET", "HEAD"):
            if path in ("/", "/index.html"):
                page = PAGE.replace("@MAX_PRIMER_BYTES@", str(MAX_PRIMER_BYTES)).replace(
                    "@CONTROLS@", control_inputs())
                return _response(page, "text/html; charset=utf-8")
            if path == "/api/models":
                return _json(200, {"models": self.studio.model_list()})
            if path == "/api/controls":
                try:
                    return _json(200, {"controls": self.studio.own_controls(
                        request.args.get("model"), request.args.get("style"))})
                except UserError as e:
                    return _json(400, {"error": str(e)})
            parts = path.split("/")
            if len(parts) == 4 and parts[1] == "pieces":
                found = self.studio.file(parts[2], parts[3])
                if found is not None:
                    # Conditional: answers Range requests (206), so the audio can seek.
                    response = send_file(found, request.environ, mimetype=FILES[parts[3]],
                                         conditional=True, download_name=parts[3], max_age=0)
                    response.headers["Cache-Control"] = "no-store"
                    return response
                return _json(404, {"error": "no such file; compose again"})
            return _json(404, {"error": f"no page {path}"})
        if request.method != "POST":
            return _json(405, {"error": f"{request.method} is not an action of the studio"})
        if path != "/api/compose":
            return _json(404, {"error": f"no action {path}"})
        if request.content_length is None:
            return _json(411, {"error": "the request has no length"})
        if request.content_length > MAX_REQUEST_BYTES:
            # The server reads (and drops) what was sent, so that the sender
            # hears this answer rather than a broken connection.
            return _json(413, {"error": f"the upload is larger than the "
                                        f"{MAX_PRIMER_BYTES // 1024} KB limit for a primer"})
        try:
            body = json.loads(request.get_data(cache=False) or b"null")
        except ValueError:
            return _json(400, {"error": "the request is not valid JSON"})
        try:
            return _json(200, self.studio.compose(body))
        except UserError as e:
            return _json(400, {"error": str(e)})
        except Exception as e:  # a bug: the page gets one line, the log the details
            log.exception("composing failed")
            return _json(500, {"error": f"composing failed ({type(e).__name__}: {e}); "
                                        "see the studio's terminal"})


def _response(body, content_type, status=200):
    from werkzeug.wrappers import Response

    response = Response(body, status=status, content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response


def _json(status, value):
    return _response(json.dumps(value), "application/json", status)


def make_server(models, host=DEFAULT_HOST, port=DEFAULT_PORT, folder=None):
    """An HTTP server for the studio page (not yet serving).

    Args:
        models: `{name: path}` offered on the page.
        host, port: where to listen (port 0: any free port).
        folder: the temporary folder for pieces (None: a new one).

    Returns:
        `(server, studio)`: a Werkzeug server (`serve_forever`, `shutdown`,
        `server_close`; `server.server_address` says the port) and the `Studio`.

    Raises:
        UserError: the port cannot be opened.
    """
    from werkzeug.serving import make_server as werkzeug_server

    made = folder is None
    folder = folder or tempfile.mkdtemp(prefix="biax-studio-")
    studio = Studio(models, folder)
    # Werkzeug logs every request at INFO; the studio's own messages are enough.
    requests_log = logging.getLogger("werkzeug")
    if requests_log.level == logging.NOTSET:
        requests_log.setLevel(logging.WARNING)
    # The socket is opened here, not by Werkzeug, which would print its own
    # lines and exit the process on a busy port.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listening = socket.create_server((host, port), family=family)
    except (OSError, OverflowError) as e:
        if made:
            shutil.rmtree(folder, ignore_errors=True)
        reason = getattr(e, "strerror", None) or str(e)
        raise UserError(f"cannot listen on {host}:{port} ({reason}); "
                        "choose another --port") from None
    try:
        server = werkzeug_server(host, listening.getsockname()[1], App(studio), threaded=True,
                                 fd=listening.fileno())
    finally:
        listening.close()  # the server listens on its own copy
    return server, studio


def serve(model=None, host=DEFAULT_HOST, port=DEFAULT_PORT, ready=print):
    """`biax studio`: serve the page until interrupted, then remove the temporary folder.

    Args:
        model: a model path to offer first (loaded before serving, so a bad
            one is an error at once), or None for the shipped models only.
        host, port: where to listen.
        ready: called with the page's address once it is served.

    Raises:
        UserError: a model that cannot be loaded, no model at all, a busy port.
    """
    import biax_keras

    folder = tempfile.mkdtemp(prefix="biax-studio-")
    # What the libraries write for themselves (TensorFlow's generated code
    # when it traces the sampler) goes inside the studio's folder too.
    scratch = os.path.join(folder, "scratch")
    os.mkdir(scratch)
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = os.environ["TMPDIR"] = scratch
    try:
        models = {}
        if model is not None:
            biax_keras.load_model(model)  # a bad --model fails now, not on the page
            models[Path(model).name or str(model)] = os.path.abspath(model)
        models.update({k: v for k, v in shipped_models().items() if k not in models})
        if not models:
            raise UserError("no model to compose with: give --model PATH (a run folder or "
                            ".keras file)")
        server, studio = make_server(models, host, port, folder=folder)
        try:
            # The first press need not wait for loading and tracing the sampler.
            _, first = studio._model(next(iter(models)), None)
            biax_keras.generate(first, steps=1, seed=0)
            ready(f"http://{server.server_address[0]}:{server.server_address[1]}/")
            server.serve_forever()
        finally:
            server.server_close()
    finally:
        tempfile.tempdir = saved[0]
        if saved[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved[1]
        shutil.rmtree(folder, ignore_errors=True)


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>biax studio</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; max-width: 1900px; }
  h1 { font-size: 1.3em; margin: 0 0 .6em; }
  form { display: flex; flex-wrap: wrap; gap: .8em 1.4em; align-items: end; }
  label { display: flex; flex-direction: column; font-size: .85em; gap: .2em; }
  input[type=number] { width: 7em; }
  input, select, button { font-size: 1em; }
  button { padding: .35em 1.1em; }
  #error { color: #a40000; font-weight: 600; margin: .8em 0; white-space: pre-wrap; }
  #status { color: #444; margin: .8em 0; }
  #roll { max-width: 100%; border: 1px solid #ddd; display: block; margin: .6em 0; }
  #result[hidden] { display: none; }
  .downloads a { margin-right: 1.2em; }
</style>
</head>
<body>
<h1>biax studio</h1>
<form id="settings" onsubmit="return false">
  <label>Model <select id="model"></select></label>
  <label>or a run folder / .keras file <input id="model_path" size="28" placeholder="runs/bach"></label>
  <label>Seconds <input id="seconds" type="number" value="15" min="0.5" max="120" step="0.5"></label>
  <span id="styles" hidden>
  <label title="the style to compose in (a model trained on several collections)">Style <select id="style"></select></label>
  <label title="a second style to blend with the first">blended with <select id="blend"></select></label>
  <label title="the second style's share of the blend">its share <input id="blend_weight" type="range" min="0.05" max="0.95" step="0.05" value="0.5"></label>
  </span>
@CONTROLS@
  <label>Seed <input id="seed" type="number" value="1" step="1"></label>
  <label>Primer MIDI (optional) <input id="primer" type="file" accept=".mid,.midi,audio/midi"></label>
  <button id="compose" type="button">Compose</button>
  <button id="continue" type="button" disabled>Continue</button>
</form>
<div id="error" role="alert"></div>
<div id="status"></div>
<div id="result" hidden>
  <img id="roll" alt="piano roll of the composed piece">
  <audio id="audio" controls></audio>
  <p class="downloads"><a id="download-midi" download="piece.mid">Download MIDI</a>
  <a id="download-wav" download="piece.wav">Download WAV</a></p>
</div>
<script>
"use strict";
let current = null;
const MAX_PRIMER_BYTES = @MAX_PRIMER_BYTES@;
const $ = (id) => document.getElementById(id);

function fail(message) { $("error").textContent = message; $("status").textContent = ""; }

let ownControls = {};  // model name -> its own sampling controls
let modelStyles = {};  // model name -> its styles, or null
let styleControls = {};  // model name -> whether its styles have controls of their own

function fillStyles(names) {
  $("styles").hidden = !names;
  $("style").replaceChildren(); $("blend").replaceChildren();
  const none = document.createElement("option");
  none.value = ""; none.textContent = "nothing"; $("blend").appendChild(none);
  for (const name of names || []) {
    for (const select of [$("style"), $("blend")]) {
      const option = document.createElement("option");
      option.value = name; option.textContent = name; select.appendChild(option);
    }
  }
}

// "a", or "a=0.5,b=0.5" with a second style blended in; null for a model without styles.
function chosenStyle() {
  if ($("styles").hidden || !$("style").value) return null;
  const first = $("style").value, second = $("blend").value;
  if (!second || second === first) return first;
  const share = Number($("blend_weight").value);
  return first + "=" + (1 - share).toFixed(2) + "," + second + "=" + share.toFixed(2);
}

// A model's own controls (those its samples look most like its collection
// with) become the inputs' values when it is chosen, and its styles the picker's.
function setControls(controls) {
  for (const input of document.querySelectorAll("input.control")) {
    if (!(input.id in controls)) continue;
    if (input.type === "checkbox") input.checked = controls[input.id];
    else input.value = controls[input.id];
  }
}

function showOwnControls() {
  fillStyles(modelStyles[$("model").value]);
  const controls = ownControls[$("model").value];
  if (controls) setControls(controls);
}

// A style model whose styles have controls of their own: choosing a style or
// a blend sets the inputs to its controls (the studio mixes them).
async function showStyleControls() {
  const model = $("model").value, style = chosenStyle();
  if (!styleControls[model] || !style) return;
  try {
    const answer = await (await fetch("/api/controls?model=" + encodeURIComponent(model) +
                                      "&style=" + encodeURIComponent(style))).json();
    if (answer.controls) setControls(answer.controls); else fail(answer.error);
  } catch (e) { fail("cannot reach the studio: " + e); }
}

async function loadModels() {
  try {
    const answer = await (await fetch("/api/models")).json();
    for (const m of answer.models) {
      const option = document.createElement("option");
      option.value = m.name; option.textContent = m.name; $("model").appendChild(option);
      ownControls[m.name] = m.controls;
      modelStyles[m.name] = m.styles;
      styleControls[m.name] = m.style_controls;
    }
    showOwnControls();
  } catch (e) { fail("cannot reach the studio: " + e); }
}

function readPrimer() {
  const file = $("primer").files[0];
  if (!file) return Promise.resolve(null);
  if (file.size > MAX_PRIMER_BYTES)
    return Promise.reject(new Error(file.name + " is larger than the " +
      Math.round(MAX_PRIMER_BYTES / 1024) + " KB limit for a primer"));
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve({name: file.name, data: reader.result.split(",", 2)[1] || ""});
    reader.onerror = () => reject(new Error("cannot read " + file.name));
    reader.readAsDataURL(file);
  });
}

async function compose(continuing) {
  $("error").textContent = "";
  $("status").textContent = continuing ? "continuing..." : "composing...";
  $("compose").disabled = true; $("continue").disabled = true;
  try {
    const request = {
      model: $("model").value, model_path: $("model_path").value,
      seconds: $("seconds").value, seed: $("seed").value,
      continue: continuing ? current : null,
      style: chosenStyle(),
      primer: continuing ? null : await readPrimer(),
    };
    for (const input of document.querySelectorAll("input.control"))
      request[input.id] = input.type === "checkbox" ? input.checked : input.value;
    const response = await fetch("/api/compose", {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(request)});
    let answer;
    try { answer = await response.json(); }
    catch (e) { throw new Error("the studio answered " + response.status + " " + response.statusText); }
    if (!response.ok) { fail(answer.error || ("error " + response.status)); return; }
    current = answer.piece;
    const stamp = "?" + answer.piece;
    $("roll").src = answer.files["roll.png"] + stamp;
    $("audio").src = answer.files["piece.wav"] + stamp;
    $("download-midi").href = answer.files["piece.mid"];
    $("download-wav").href = answer.files["piece.wav"];
    $("result").hidden = false;
    const sound = answer.synth === "sine" ? " (sine waves: no soundfont synthesizer installed)" : "";
    $("status").textContent = "composed " + answer.seconds + " s" +
      (answer.primer_steps ? " (" + answer.primer_steps + " steps of it the primer)" : "") +
      " in " + answer.compose_seconds + " s" + sound;
  } catch (e) {
    fail(String(e.message || e));
  } finally {
    $("compose").disabled = false; $("continue").disabled = current === null;
  }
}

$("model").addEventListener("change", showOwnControls);
for (const id of ["style", "blend", "blend_weight"]) $(id).addEventListener("change", showStyleControls);
$("compose").addEventListener("click", () => compose(false));
$("continue").addEventListener("click", () => compose(true));
loadModels();
</script>
</body>
</html>
"""
