# MNIST Digit Classifier: `make run` starts the app, `make test` runs the tests.
# Both set up everything they need first (a virtualenv from the pinned requirements).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The MNIST files: a local copy beside the checkout when there is one; else the app's data
# folder (<MNIST_DATA_HOME>/mnist), where scripts/fetch_mnist.py downloads them (MNIST_MIRROR
# first, then the public mirrors) before the tests and benchmarks run.
SHARED_MNIST := $(abspath ../shared/data/mnist)
ifneq ($(wildcard $(SHARED_MNIST)/train-images-idx3-ubyte.gz),)
export MNIST_DIR ?= $(SHARED_MNIST)
endif

.PHONY: help venv system-deps mnist run test lint-imports bench train package package-test clean

help:
	@echo "make run      set up and start the desktop app (embedded PostgreSQL)"
	@echo "make test     set up and run every test"
	@echo "make train    train both shipped models (the product network, then the app's default)"
	@echo "make bench    run the benchmarks in bench/"
	@echo "make mnist    find the MNIST files, or download them into the data folder"
	@echo "make package  build dist/mnist-classifier with PyInstaller"
	@echo "make package-test  build it and check the executable (self-test, window on Xvfb)"

$(VENV)/.stamp: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.stamp

system-deps:
	@bash scripts/system-deps.sh test

mnist: venv
	@$(PY) scripts/fetch_mnist.py

run: venv
	@bash scripts/system-deps.sh run
	$(PY) main.py

test: venv system-deps mnist
	$(VENV)/bin/lint-imports
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

lint-imports: venv
	$(VENV)/bin/lint-imports

train: venv mnist
	$(PY) run_model.py --mode both
	$(PY) run_model.py --mode both --preset robust --model-path saved_models/mnist_robust.pth
	$(PY) run_model.py --mode pieces

bench: venv mnist
	$(PY) bench/train_speed.py
	$(PY) bench/infer_latency.py
	$(PY) bench/db_bench.py
	$(PY) bench/gui_latency.py
	$(PY) bench/finetune_gain.py
	$(PY) bench/db_concurrency.py
	$(PY) bench/canvas_strokes.py
	QT_QPA_PLATFORM=offscreen $(PY) bench/robustness.py
	$(PY) bench/number_reading.py

package: venv
	$(VENV)/bin/pyinstaller --noconfirm --clean build.spec

package-test: package system-deps
	bash scripts/package-test.sh

clean:
	rm -rf build dist .pytest_cache
