# The two commands the README promises: `make run` and `make test`. Each installs what it needs first.
BUILD       ?= build
GENERATOR   ?= Ninja
CMAKE_FLAGS ?=
JOBS        ?= $(shell nproc)
# ccache, when present, lets the main and sanitizer trees (and repeated builds) share compiled objects.
LAUNCHER    := $(if $(shell command -v ccache),-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

.PHONY: all deps build test run bench clean

all: build

deps:
	@scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD) -G $(GENERATOR) $(LAUNCHER) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@scripts/run-tests $(BUILD)

run: build
	@scripts/demo $(BUILD)

bench: build
	@scripts/run-bench $(BUILD)

clean:
	rm -rf $(BUILD) build-asan build-tsan
