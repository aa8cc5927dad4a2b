# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export MUJOCO_GL ?= egl
export PYTHONUNBUFFERED := 1

.PHONY: demo test test-slow bench clean

$(BIN)/.installed: setup.py setup.cfg package.xml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[ros,test]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/agent-stack demo

# pytest exits 5 when it collected nothing; make treats any non-zero exit as failure.
test: $(BIN)/.installed
	$(BIN)/python -m pytest

test-slow: $(BIN)/.installed
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf $(VENV) build *.egg-info
