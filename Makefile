# All set-up happens here: a fresh machine needs only python3 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= studies/default

.PHONY: install study test lint test-faults browser report-screenshot clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and exactly: the CPU build on machines that have it on disk, never an open range
	$(BIN)/python -m pip install -q "torch==2.13.0"
	# ray: the Ray executor's tests (tests/test_executor_ray.py) start a two-node cluster on 127.0.0.1
	$(BIN)/python -m pip install -q -e ".[test,ray]"
	touch $(STAMP)

study: install
	$(BIN)/emergelab study --out $(OUT)
	@echo "Report: $(OUT)/report/index.html"

test: install browser
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m "not faults"

# ruff, and the import-layering contracts of docs/architecture.md (pyproject's [tool.importlinter])
lint: install
	$(BIN)/ruff check src tests bench examples
	$(BIN)/lint-imports

# Debian's Chromium for the report's browser test; where it cannot be installed the test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
	  echo "chromium is not available: the report's browser test will be skipped"

# A screenshot of the default study's report, for the README.
report-screenshot: install browser
	$(BIN)/emergelab report $(OUT) --screenshot docs/report.png

test-faults: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m faults

clean:
	rm -rf $(VENV) studies
