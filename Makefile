# Every target that needs Python builds the virtual environment first, so a
# fresh machine needs nothing but Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# GPU=1 installs onnxruntime-gpu in place of the CPU runtime (only one may be installed).
GPU    ?=

.PHONY: install demo console-demo test lint proto serve eval bench-search bench-enrol bench-audit bench-realtime \
	bench-alerts bench-console clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "fr-gateway needs Python 3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,milvus$(if $(GPU),$(comma)gpu)]'
ifneq ($(GPU),)
	# Both wheels ship the same 'onnxruntime' module: drop the CPU one, then repair the GPU one.
	$(BIN)/python -m pip uninstall --quiet -y onnxruntime
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps 'onnxruntime-gpu>=1.20,<2'
endif
	touch $(STAMP)

comma := ,

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

# The demo with the Command Center console left running until Ctrl-C; it prints the address and a sign-in.
console-demo: $(STAMP)
	$(BIN)/python scripts/demo.py --console

# The console's browser tests drive Debian's chromium through its chromium-driver; installed here when missing
# (as root, as CI runs), since nothing installed by hand survives a fresh machine.
BROWSER_DRIVER := /usr/bin/chromedriver
$(BROWSER_DRIVER):
	@if [ "$$(id -u)" -ne 0 ]; then echo "the console's browser tests need Debian's chromium and chromium-driver:" \
		"run 'sudo apt-get install chromium chromium-driver', or make test as root"; exit 1; fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver

test: $(STAMP) $(BROWSER_DRIVER)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n auto --dist loadfile tests

lint: $(STAMP)
	$(BIN)/ruff check .

proto: $(STAMP)
	$(BIN)/python scripts/gen_proto.py

# Benchmarks write JSON and a markdown table to benchmarks/; the search one takes about an hour on 2 cores.
bench-search: $(STAMP)
	$(BIN)/python benchmarks/search.py

bench-enrol: $(STAMP)
	$(BIN)/python benchmarks/enrolment.py

bench-audit: $(STAMP)
	$(BIN)/python benchmarks/audit.py

bench-realtime: $(STAMP)
	$(BIN)/python benchmarks/realtime.py

bench-alerts: $(STAMP)
	$(BIN)/python benchmarks/alerts.py

# The console's browser tests, recording the alert-to-screen time (benchmarks/console.*) and the README's
# screenshots (docs/console-*.png)
bench-console: $(STAMP) $(BROWSER_DRIVER)
	FRG_CONSOLE_RECORD=1 $(BIN)/python -m pytest -q tests/test_console.py

# Accuracy over gRPC on the sample faces (data/faces), the default model beside its INT8 variant (about 8 minutes;
# the INT8 model is quantised first when missing, its figures kept beside it rather than in benchmarks/int8.*)
SAMPLE_FACES := $(or $(FRG_TEST_DATA),data/faces)
INT8_MODEL := benchmarks/int8-model/w600k_mbf_int8.onnx
$(INT8_MODEL): | $(STAMP)
	$(BIN)/python benchmarks/int8.py --out benchmarks/int8-model/int8

eval: $(STAMP) $(INT8_MODEL)
	$(BIN)/fr-gateway eval $(SAMPLE_FACES)/celebrities $(SAMPLE_FACES)/orl $(SAMPLE_FACES)/fr-examples \
		--compare $(INT8_MODEL) --out benchmarks/eval

serve: $(STAMP)
	$(BIN)/fr-gateway serve --insecure

clean:
	rm -rf $(VENV) demo-out .pytest_cache
