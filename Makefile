# `make demo` and `make test` work on a fresh machine: they create .venv and install what they need.
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Real MNIST: $HPO_DATA_DIR, else ../shared/datasets when it is there, else the user cache
# (downloaded when online; the embedded sample, with a loud warning, when offline).
SHARED := $(abspath ../shared/datasets)
export HPO_DATA_DIR ?= $(if $(wildcard $(SHARED)/MNIST/raw),$(SHARED),)

.PHONY: demo test test-fast test-kill bench bench-gpu lint lock clean

# TORCH=cpu: PyTorch's CPU-only build from PyTorch's own wheel index (no CUDA, no nvidia-*
# packages, no triton), e.g. `make TORCH=cpu VENV=.venv-cpu test`. requirements.lock stays valid:
# its torch pins match the +cpu builds, and its nvidia-* / triton pins are only constraints.
TORCH ?= default
TORCH_default := torch==2.14.1 torchvision==0.29.1
TORCH_cpu     := --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple \
                 torch==2.14.1+cpu torchvision==0.29.1+cpu
ifeq ($(TORCH_$(TORCH)),)
$(error TORCH must be default or cpu, not $(TORCH))
endif

# requirements.lock: the exact versions CI tested; every install is constrained to them.
$(VENV)/.installed: pyproject.toml requirements.lock
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: these wheels are on this machine's disk (other pins download GBs)
	$(PY) -m pip install -q -c requirements.lock $(TORCH_$(TORCH))
	$(PY) -m pip install -q -c requirements.lock -e '.[test]'
	touch $@

# Re-pin requirements.lock to what the venv holds now (after changing a dependency; with the
# default torch, so the lock keeps the CUDA build's pins).
lock: $(VENV)/.installed
	(sed -n 1,2p requirements.lock; $(PY) -m pip freeze --exclude-editable | grep -v '^hpo') > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock

demo: $(VENV)/.installed
	$(VENV)/bin/hpo run search_spaces/lr_reg.yaml

# Then the packed-vs-ordinary tests again under a second CPU kernel family (tests/equivalence.py):
# avx2 where torch picked avx512, else default.
CAPABILITY = $(PY) -c "import torch; print('avx2' if torch.backends.cpu.get_cpu_capability() == 'AVX512' else 'default')"
test: $(VENV)/.installed
	$(PY) -m pytest -q -ra --durations=25
	ATEN_CPU_CAPABILITY=$$($(CAPABILITY)) $(PY) -m pytest -q -m "not slow" tests/test_pack.py tests/test_func_pack.py

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"
	ATEN_CPU_CAPABILITY=$$($(CAPABILITY)) $(PY) -m pytest -q -m "not slow" tests/test_pack.py tests/test_func_pack.py

# the long kill-anywhere test: 8 random kill moments and both chosen ones per sweep (CI: a sample)
test-kill: $(VENV)/.installed
	HPO_KILL_POINTS=8 $(PY) -m pytest -q -s tests/test_kill_anywhere.py

bench: $(VENV)/.installed
	$(PY) benchmarks/run_all.py

# the GPU figures (packing, fractional GPUs) into BENCHMARKS.md; refuses without CUDA
bench-gpu: $(VENV)/.installed
	$(PY) benchmarks/run_all.py --only gpu

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check hpo trainables tests benchmarks scripts examples

clean:
	rm -rf runs .pytest_cache
