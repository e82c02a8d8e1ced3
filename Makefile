# Two commands on a fresh machine:
#   make run    installs everything, creates the database, seeds the demo, starts the app
#   make test   installs everything, runs the checks (ruff, lint-imports, mypy), then the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: install run check test demo bench clean

$(BIN)/stillroom: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

install: $(BIN)/stillroom

run: install
	$(BIN)/stillroom init
	$(BIN)/stillroom demo
	$(BIN)/streamlit run web.py --server.port $(PORT)

# Before the tests: lint, the layers of core (import-linter's contracts in pyproject.toml), and types (mypy,
# strict on core.domain and core.store). Any one failing fails `make test`, and so CI.
check: install
	$(BIN)/ruff check .
	PYTHONPATH=. $(BIN)/lint-imports
	$(BIN)/mypy

test: check
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 $(BIN)/pytest -q -ra

bench: install
	for f in benchmarks/bench_*.py; do HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) data/stillroom.db data/stillroom.db-*
