# Two entry points for a fresh machine with Python 3.11 and pip:
#   make demo   install into .venv what the demo needs, then run `wmprobe demo` (`make install`: every extra)
#   make test   install into .venv (with test extras), then run the whole test suite
#   make lint   ruff (src/, tests/) and mypy (the package; strict on the core modules), as CI runs them
PY ?= python3
VENV ?= .venv
PIP := $(VENV)/bin/pip
OUT ?= wmprobe-demo
STAMP := $(VENV)/.installed
ALL_STAMP := $(VENV)/.installed-all

.PHONY: demo test lint install clean bench

$(VENV)/bin/python:
	$(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# what `wmprobe demo` needs: the core and the `fidelity` extra (SSIM); not the research stacks (transformers,
# diffusers, ray, submitit, av, h5py: ~30 s more of a fresh install that the demo never imports).
# --no-compile: pip byte-compiles every module it installs (torch, sympy, pandas, scipy: ~10,000 files), the
# demo imports about a quarter of them; importing what the demo's processes import, with bytecode writing on
# (whatever PYTHONDONTWRITEBYTECODE says), writes those .pyc files instead. A module it misses compiles on
# first import, as always. docs/performance.md "make demo's install" has the seconds this saves.
DEMO_IMPORTS := wmprobe.demo, wmprobe.study.tasks, wmprobe.report, torch._dynamo, scipy.stats, scipy.spatial, \
	pandas, pyarrow.parquet, matplotlib.pyplot, jinja2, PIL.Image, filelock, safetensors.torch
$(STAMP): $(VENV)/bin/python pyproject.toml constraints.txt
	$(PIP) install -q --no-compile -c constraints.txt torch==2.13.0
	$(PIP) install -q --no-compile -c constraints.txt -e ".[fidelity]"
	PYTHONDONTWRITEBYTECODE= $(VENV)/bin/python -c "import $(DEMO_IMPORTS)"
	touch $(STAMP)

# every extra a research run may use (`pip install -e ".[all]"`: hf, formats, dist, fidelity)
$(ALL_STAMP): $(STAMP)
	$(PIP) install -q -c constraints.txt -e ".[all]"
	touch $@

install: $(ALL_STAMP)

demo: $(STAMP)
	$(VENV)/bin/wmprobe demo --out $(OUT)

# the tests add pytest, the reference implementations they compare against (scikit-learn, imagecorruptions,
# scikit-image), the experiment trackers they read back offline (wandb, mlflow-skinny, tensorboard) and the
# metaworld suite (MuJoCo, offscreen EGL; its tests skip where it cannot render)
# (and byte-compiles, on every core, what the demo's install left to compile on first import: a test suite
# starts hundreds of processes, each of which would compile those modules again under PYTHONDONTWRITEBYTECODE;
# like pip, it skips a file this Python cannot compile: torch ships one written for Python 3.12)
$(VENV)/.installed-test: $(STAMP)
	$(PIP) install -q -c constraints.txt -e ".[all,test]"
	$(PIP) install -q -c constraints.txt -e ".[metaworld]" || echo "warning: metaworld not installed; its tests skip" >&2
	$(VENV)/bin/python -m compileall -q -j 0 $$($(VENV)/bin/python -c "import sysconfig; print(sysconfig.get_path('purelib'))") >/dev/null || true
	touch $@

test: $(STAMP) $(VENV)/.installed-test
	$(VENV)/bin/python -m pytest

# ruff and mypy as configured in pyproject.toml ([tool.ruff], [tool.mypy]); installed with the test extras
lint: $(STAMP) $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy

# the machine's limits first, then every hot path: each prints its reference ratio and its fraction of the
# limit that bounds it (docs/performance.md). Each bench runs at the sizes of docs/performance.md's figures,
# BENCH_SIZES_<name> (about 190 CPU seconds in all: within 6 minutes on 2 quiet cores); BENCH_ARGS replaces them for every bench
# (BENCH_ARGS=--quick: a smoke run), BENCH_STANDARD=0 runs each bench at its own (much larger) defaults.
BENCH_STANDARD ?= 1
BENCH_SIZES_probes := --steps 100 --layers 1 --pairs 20000 --dim 512 --paper-steps 30
BENCH_SIZES_extract := --quick --threads 1
BENCH_SIZES_study := --quick
BENCH_SIZES_zoo := --quick --threads 1
BENCH_SIZES_datagen := --quick
BENCH_SIZES_readers := --quick
BENCHES := $(basename $(notdir $(filter-out bench/roofline.py,$(wildcard bench/*.py))))
bench-args = $(if $(strip $(BENCH_ARGS)),$(BENCH_ARGS),$(if $(filter 1,$(BENCH_STANDARD)),$(BENCH_SIZES_$(1))))
bench: $(STAMP) $(VENV)/.installed-test
	$(VENV)/bin/python bench/roofline.py $(BENCH_ARGS) || exit 1
	$(foreach b,$(BENCHES),$(VENV)/bin/python bench/$(b).py $(call bench-args,$(b)) || exit 1;)

clean:
	rm -rf $(VENV) wmprobe-demo .pytest_cache
