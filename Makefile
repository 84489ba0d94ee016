# Two commands do all the set-up: `make run` (app on the shipped weights) and `make test` (whole suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)
PORT ?= 8501
# this machine only; `make run ADDRESS=0.0.0.0` exposes the app to the network (a demo: see README)
ADDRESS ?= 127.0.0.1

.PHONY: run test test-shuffled bench browser-deps clean

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m dance.ui.serve --server.port $(PORT) --server.address $(ADDRESS)

# Chromium for the real-browser tests: Debian's package, installed when missing and we are root.
browser-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "WARNING: could not install chromium; browser tests will be skipped"; \
	  else echo "WARNING: chromium missing and not root; browser tests will be skipped"; fi; \
	fi

test: $(STAMP) browser-deps
	$(PY) -m pytest

# The whole suite in a random order; the seed is printed (rerun that order: make test-shuffled ARGS=--randomly-seed=N).
test-shuffled: $(STAMP) browser-deps
	$(PY) -m pytest -p randomly $(ARGS)

bench: $(STAMP)
	$(PY) -m bench.speed

clean:
	rm -rf $(VENV) tests/artifacts .pytest_cache
