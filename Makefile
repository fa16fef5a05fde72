# One entry point for set-up, tests and the quick start. Everything lives in a local
# virtual environment so nothing leaks into the system Python.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch/torchvision pinned to the builds that this project is tested with; override for
# another platform, e.g. `make test TORCH_SPEC="torch torchvision"`.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=
# real: the default public weights (downloaded once); tiny: untrained random models, an install check.
MODELS ?= real

.PHONY: install browser ffmpeg test test-numeric-isa test-install lint quickstart clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

lint: install
	$(BIN)/ruff check tgs tests benchmarks scripts

# The demo's browser test drives the system Chromium (Debian package `chromium`); Playwright never
# downloads a browser. Installed here when missing and we can (root with apt-get); else a hint.
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ -x "$(CHROMIUM)" ] || command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	else \
		echo "warning: Chromium not found; the browser test will fail. Install it (Debian: sudo apt-get install chromium) or set TGS_CHROMIUM." >&2; \
	fi

# The live-source tests serve streams in real time with the FFmpeg command line (Debian package
# `ffmpeg`); PyAV brings its own libraries but no `ffmpeg` command. Installed here when missing and
# we can (root with apt-get); else a hint (those tests are then skipped, saying why).
ffmpeg:
	@if command -v ffmpeg >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg; \
	else \
		echo "warning: the ffmpeg command was not found; the live-source tests are skipped. Install it (Debian: sudo apt-get install ffmpeg)." >&2; \
	fi

test: install browser ffmpeg
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/ruff check tgs tests benchmarks scripts
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

# The numeric tests (marker `numeric`: float results bounded by float32 error analysis) once more
# with torch's CPU kernels forced below this machine's best instruction set: AVX2 where the CPU has
# AVX-512 (or AMX), the portable `default` where AVX2 is the best. MKL and oneDNN are capped alike.
# Rounding then differs from the first pass, so a tolerance tuned to one CPU fails on every machine.
# The forced level is checked first: an ignored variable must not pass as a second machine.
test-numeric-isa: install
	@native=$$($(BIN)/python -c "import torch; print(torch.backends.cpu.get_cpu_capability())"); \
	case "$$native" in \
		AVX512*|*AMX*) aten=avx2; mkl=AVX2; dnn=AVX2 ;; \
		DEFAULT) echo "numeric tests: the CPU kernels are already the portable default; no second pass"; exit 0 ;; \
		*) aten=default; mkl=SSE4_2; dnn=SSE41 ;; \
	esac; \
	export ATEN_CPU_CAPABILITY=$$aten MKL_ENABLE_INSTRUCTIONS=$$mkl ONEDNN_MAX_CPU_ISA=$$dnn HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1; \
	forced=$$($(BIN)/python -c "import torch; print(torch.backends.cpu.get_cpu_capability())"); \
	echo "numeric tests: native CPU kernels $$native, rerun with $$forced (MKL $$mkl, oneDNN $$dnn)"; \
	if [ "$$forced" = "$$native" ]; then echo "error: ATEN_CPU_CAPABILITY=$$aten did not change the kernels ($$native)" >&2; exit 1; fi; \
	$(BIN)/python -m pytest -n 2 -m numeric $(PYTEST_ARGS)

# The wheel, installed into a fresh venv without this Makefile, runs the tiny pipeline (a few
# minutes; pip's cache makes reruns fast). Left out of `make test`; CI runs it once.
test-install: install
	$(BIN)/python -m pytest -m install $(PYTEST_ARGS)

quickstart: install
	$(BIN)/tgs quickstart --out quickstart --models $(MODELS)

clean:
	rm -rf $(VENV) quickstart .pytest_cache .ruff_cache
