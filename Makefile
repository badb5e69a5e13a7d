# Two commands for a newcomer: `make demo` (the whole study on synthetic speakers) and `make test`.
# Both create .venv on first use. torch/torchaudio are pinned to a pair that loads together.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.14.1 torchaudio==2.11.0
CORES ?= 2
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test test-fast lint clean

$(BIN)/svbench: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[test]' $(TORCH)
	touch $@

demo: $(BIN)/svbench
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/report.html
	@echo "open results/report.html"

test: $(BIN)/svbench
	$(BIN)/python -m pytest -m "not slurm or slurm" tests

test-fast: $(BIN)/svbench
	$(BIN)/python -m pytest -m "not e2e and not slurm" tests

lint: $(BIN)/svbench
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint

clean:
	rm -rf results .snakemake
