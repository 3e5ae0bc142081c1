# citypark — the two commands a newcomer needs:
#   make demo   run the whole product locally (API, ingest, simulator) on the demo district (PORT=8000)
#   make test   run the whole test suite against real PostGIS and Mosquitto
VENV   ?= .venv
PORT   ?= 8000
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test venv services lint lock bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock requirements-ngsild-client.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -r requirements-ngsild-client.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

services:
	bash deploy/local/services.sh

demo: venv services
	$(VENV)/bin/citypark demo --port $(PORT)

test: venv services
	$(VENV)/bin/pytest

lint: venv
	$(VENV)/bin/ruff check app sensors matching tests bench migrations
	$(VENV)/bin/mypy

# Re-pin every dependency after editing pyproject.toml.
lock:
	rm -rf .venv-lock && python3 -m venv .venv-lock
	.venv-lock/bin/pip install -q -e '.[dev]'
	.venv-lock/bin/pip freeze --exclude-editable | grep -v '^citypark' > requirements.lock
	rm -rf .venv-lock

bench: venv services
	@ls bench/*.py

clean:
	rm -rf $(VENV) test-output .pytest_cache
