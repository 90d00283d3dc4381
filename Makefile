# Two entry points (README): `make demo` and `make test`. Both set up .venv
# first; set-up is skipped when nothing it depends on changed.
#
# CPU installs pin torch through constraints-cpu.txt on EVERY pip call, so no
# dependency can pull the multi-GB CUDA wheels. Rig users with a CUDA torch use
# `make setup TORCH=` (keeps whatever torch is installed; see README).

VENV      ?= .venv
PYTHON    ?= python3
TORCH     ?= torch==2.13.0
PY        := $(VENV)/bin/python
PIP       := $(PY) -m pip
CONSTRAIN := -c constraints-cpu.txt
REQS      := requirements.txt requirements-ros.txt requirements-dev.txt constraints-cpu.txt setup.py setup.cfg
STAMP     := $(VENV)/.dkt-stack-installed

.PHONY: setup demo test lint clean-venv

setup: $(STAMP)

$(STAMP): $(REQS)
	@bash .ci/system-deps.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@if [ -n "$(TORCH)" ]; then $(PIP) install -q $(CONSTRAIN) "$(TORCH)"; fi
	$(PIP) install -q $(if $(TORCH),$(CONSTRAIN)) -r requirements.txt -r requirements-ros.txt -r requirements-dev.txt
	$(PIP) install -q $(if $(TORCH),$(CONSTRAIN)) --no-deps -e .
	$(PIP) check
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/dkt-stack demo

# The suite runs in one xdist worker process: a hard crash inside native middleware (DDS,
# rclpy) then fails only the test it hit, named, instead of killing the run; such a crash
# (and nothing else) gets one rerun, shown as R in the summary.
PYTEST_CRASH := -n 1 --reruns 1 --only-rerun "crashed while running" -rR

test: setup
	$(PY) -m pytest $(PYTEST_CRASH)
	$(VENV)/bin/ruff check .

lint: setup
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
