# Two entry points for a fresh machine with Python 3.11 and pip:
#   make demo   install into .venv, then run `wmprobe demo`
#   make test   install into .venv (with test extras), then run the whole test suite
PY ?= python3
VENV ?= .venv
PIP := $(VENV)/bin/pip
OUT ?= wmprobe-demo
STAMP := $(VENV)/.installed

.PHONY: demo test install clean bench

$(VENV)/bin/python:
	$(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): $(VENV)/bin/python pyproject.toml constraints.txt
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[all]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/wmprobe demo --out $(OUT)

# the tests add pytest, the reference implementations they compare against (scikit-learn, imagecorruptions,
# scikit-image), the experiment trackers they read back offline (wandb, mlflow-skinny, tensorboard) and the
# metaworld suite (MuJoCo, offscreen EGL; its tests skip where it cannot render)
$(VENV)/.installed-test: $(STAMP)
	$(PIP) install -q -c constraints.txt -e ".[all,test]"
	$(PIP) install -q -c constraints.txt -e ".[metaworld]" || echo "warning: metaworld not installed; its tests skip" >&2
	touch $@

test: $(STAMP) $(VENV)/.installed-test
	$(VENV)/bin/python -m pytest

# the machine's limits first, then every hot path: each prints its reference ratio and its fraction of the
# limit that bounds it (docs/performance.md); BENCH_ARGS=--quick for a fast smoke run
bench: $(STAMP) $(VENV)/.installed-test
	$(VENV)/bin/python bench/roofline.py $(BENCH_ARGS) || exit 1
	for b in $(filter-out bench/roofline.py,$(wildcard bench/*.py)); do \
		$(VENV)/bin/python $$b $(BENCH_ARGS) || exit 1; done

clean:
	rm -rf $(VENV) wmprobe-demo .pytest_cache
