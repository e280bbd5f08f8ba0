PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint docs components bench clean FORCE

# The editable install is "strict": a tree of links to runner/ and handlers/
# under their installed names (smrun, smrun.handlers), which mypy and every
# other tool can read. A module added or removed needs the tree made again:
# the install runs again whenever the list of package files changes.
LAYOUT := $(VENV)/.layout
LAYOUT_NOW := $(shell find runner handlers -name '*.py' -o -name 'py.typed' -o -path '*/static/*' -type f 2>/dev/null | sort | cksum)

$(STAMP): pyproject.toml $(LAYOUT)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' --config-settings editable_mode=strict
	touch $(STAMP)

$(LAYOUT): FORCE
	@mkdir -p $(VENV)
	@echo '$(LAYOUT_NOW)' | cmp -s - $@ || echo '$(LAYOUT_NOW)' > $@

FORCE:

run: $(STAMP)
	$(BIN)/smrun run examples/quickstart.yaml --local

test: $(STAMP) lint docs
	$(BIN)/pytest -q -n 4

lint: $(STAMP)
	$(BIN)/ruff check runner handlers components tests bench examples docs
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir build/site

components: $(STAMP)
	$(BIN)/python -m components.build

bench: $(STAMP)
	$(BIN)/python -m bench.fanout --jobs 100 --strategy list --create-rate 20

clean:
	rm -rf $(VENV) build *.egg-info
