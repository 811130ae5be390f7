# The two commands a newcomer needs (README): `make run` and `make test`.
# Each sets up its own virtual environment from requirements.lock first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test train clean-venv

$(STAMP): requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.lock
	touch $(STAMP)

## The main job on the embedded default (mini zoo, committed Fashion-MNIST subset).
run: $(STAMP)
	$(PY) -m harness

## The test suite: everything that runs on this host, the slow full-size ImageNet checks included.
test: $(STAMP)
	$(PY) -m pytest -m pc --run-slow $(PYTEST_ARGS)

## Retrain the mini zoo (needs the full Fashion-MNIST, see README).
train: $(STAMP)
	$(PY) -m harness.zoo.train

clean-venv:
	rm -rf $(VENV)
