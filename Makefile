# The two commands a new user needs (README):
#   make run    -> set up .venv if missing, then run the main job
#   make test   -> set up .venv if missing, then run the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-slow typecheck bench docs venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned to the CPU build (a plain range would pull a multi-GB CUDA build)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/mnas search --target-ms 15

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# mypy over mnas/ with the settings in pyproject.toml [tool.mypy] (CI runs it before the tests)
typecheck: $(STAMP)
	$(BIN)/python -m mypy

# the documentation site (MkDocs + Material, API reference by mkdocstrings), built --strict: a broken
# link or a docstring mkdocstrings cannot read fails the build. Output in build/site/.
$(VENV)/.docs-installed: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[docs]'
	touch $@

docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict -q

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
