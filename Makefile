PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint components bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/smrun run examples/quickstart.yaml --local

test: $(STAMP) lint
	$(BIN)/pytest -q -n 4

lint: $(STAMP)
	$(BIN)/ruff check runner handlers components tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

components: $(STAMP)
	$(BIN)/python -m components.build

bench: $(STAMP)
	$(BIN)/python -m bench.fanout --jobs 100 --strategy list --create-rate 20

clean:
	rm -rf $(VENV) build *.egg-info
