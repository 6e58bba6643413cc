# Two entry points: `make demo` (the main job, CPU preset, under 15 minutes on 2 cores) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint demo install browser clean-output

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt torch
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# Headless Chromium for the real-browser notebook test and PNG export; best effort (root + apt only).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "chromium could not be installed: the browser test will be skipped"; \
	  else echo "no chromium and no root apt: the browser test will be skipped"; fi; }

test: install browser
	$(PY) -m pytest -q tests

# House style: ruff's lint rules and formatter (pyproject.toml [tool.ruff]); `ruff format` and `ruff check --fix` mend.
lint: install
	$(VENV)/bin/ruff check internet tests benchmarks
	$(VENV)/bin/ruff format --check internet tests benchmarks

# Extra arguments for the demo, e.g. `make demo DEMO_ARGS=--float32` (python -m internet.app.demo --help)
DEMO_ARGS ?=
demo: install browser
	$(PY) -m internet.app.demo $(DEMO_ARGS)

clean-output:
	rm -rf output/log/* output/model_dump/* output/result/* output/vis/* output/notebooks
