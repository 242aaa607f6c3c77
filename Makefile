# Each target stands alone on a fresh machine: it creates .venv and installs the
# package (editable, with the test extras) when missing or when pyproject.toml changed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.planner-installed
REFERENCE ?= ../shared/reference

.PHONY: demo test install clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

# A representative planning job on built-in specs (the best training plan for
# Llama-3.1-70B on 1,024 H100s, one explicit plan estimated, the best serving plans for
# Qwen3-32B on 32 H200s, the experts of Qwen3-235B-A22B placed on 32 GPUs, the cheapest GPU-type mix
# for Llama-3.1-8B at 40 requests/s), then the checks against published and measured runs when the
# reference data is there.
demo: $(STAMP)
	$(BIN)/planner train --model llama-3.1-70b --gpu h100 --gpus 1024 --seq 8192 --gbs 1024 --tokens 15T
	@echo
	$(BIN)/planner estimate train --model llama-3.1-70b --gpu h100 --gpus 64 --tp 8 --pp 2 --mbs 1 --gbs 512 --seq 8192
	@echo
	$(BIN)/planner serve --model qwen3-32b --gpu h200 --gpus 32 --isl 4000 --osl 500 --ttft 300ms --tpot 10ms
	@echo
	$(BIN)/planner experts --model qwen3-235b-a22b --synthetic --tokens 2048 --gpus 32 --gpus-per-node 8 --redundant 32 --time-limit 10
	@echo
	$(BIN)/planner mix --model llama-3.1-8b --gpus l4,l40s,a100,h100,h200 --histogram examples/workload_histogram.csv --rate 40 --ttft 1s --tpot 50ms
	@if [ -d "$(REFERENCE)/training" ]; then \
		echo; $(BIN)/planner validate training --reference "$(REFERENCE)"; \
		echo; $(BIN)/planner validate serving --reference "$(REFERENCE)" --split report; \
	else \
		echo "($(REFERENCE) not found: skipping 'planner validate training' and 'planner validate serving')"; \
	fi

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
