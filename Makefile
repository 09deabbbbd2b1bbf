# All set-up happens here: a fresh machine needs only python3 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= studies/default

.PHONY: install study test test-faults bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and exactly: the CPU build on machines that have it on disk, never an open range
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

study: install
	$(BIN)/emergelab study --out $(OUT)
	@echo "Report: $(OUT)/report/index.html"

test: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m "not faults"

test-faults: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m faults

clean:
	rm -rf $(VENV) studies
