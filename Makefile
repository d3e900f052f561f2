# Quick start: `make demo` composes on the built-in default; `make test` runs the tests.
# Both create or update .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The folder holding the JSB Chorales (Boulanger-Lewandowski split) at
# quarter-note resolution, jsb-chorales-quarter.json.
JSB_DIR ?= ../shared/data/jsb
DEMO_MODEL ?= saved_models/bach

.PHONY: demo test test-all install benchmark jsb bench-quality clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,beam]'
	touch $(STAMP)

install: $(STAMP)

# Prepares the Bach chorales once (report printed), then composes 30 seconds with
# the shipped pretrained model: out/demo.mid, out/demo.wav (a General MIDI
# piano) and out/demo.png (its piano roll).
demo: $(STAMP)
	test -f data/bach/meta.json || $(BIN)/biax prepare bach --out data/bach
	$(BIN)/biax generate --model $(DEMO_MODEL) --out out/demo.mid --seconds 30 --seed 1
	$(BIN)/biax render out/demo.mid --to wav --to png

# One of the four polyphonic benchmarks (jsb_chorales, musedata, nottingham,
# piano_midi_de): prepare, train play-only with early stopping on valid, score
# valid and train on whole pieces. See benchmarks/quality.sh; DATA_DIR is the
# folder holding the datasets' JSON files (default ../shared/data/polyphonic).
DATASET ?= jsb_chorales
bench-quality: $(STAMP)
	$(if $(DATA_DIR),DATA_DIR=$(DATA_DIR) )benchmarks/quality.sh $(DATASET)

# The JSB recipe: `make bench-quality DATASET=jsb_chorales` on the file in $(JSB_DIR).
jsb: DATASET = jsb_chorales
jsb: DATA_DIR = $(JSB_DIR)
jsb: bench-quality

benchmark: $(STAMP)
	benchmarks/run.sh

# The fast tier, after every change: unit tests and tiny models, no extra
# processes, a few minutes.
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# Everything: the fast tier and the slow one (training recipes, subprocesses,
# kill -9 and resume, two workers, Beam, the browser page, shipped models).
test-all: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
