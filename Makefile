# faceadapt: the two commands a fresh Debian 12 machine needs are `make demo` and `make test`.
BUILD   ?= build
JOBS    ?= $(shell nproc)
CMAKE_FLAGS ?=
# Unity build (CMake's UNITY_BUILD): each target's sources compiled in batches, so the heavy
# headers (libtorch, OpenCV, CLI11, nlohmann, gtest) are parsed and instantiated once per batch
# rather than once per file. UNITY=OFF for file-by-file builds (editing one file then recompiles
# only it).
UNITY   ?= ON
SHELL   := /bin/bash

.PHONY: all deps configure build test test-asan fuzz bench bench-adapt demo install format clean

all: build

deps:
	@scripts/install-deps
	@scripts/fetch-weights >/dev/null

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_UNITY_BUILD=$(UNITY) $(CMAKE_FLAGS)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# `make build` leaves the benchmarks out; `make test` builds them too, so every one still compiles.
test: build
	cmake --build $(BUILD) -j $(JOBS) --target benchmarks
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

# config, quality, publish and daemon tests under ASan + UBSan (gcc), in build-asan. Not in
# .ci/run: its tests alone take ~15 min on 2 cores, a full build ~53 min (README.md).
test-asan:
	@scripts/run-asan-tests

# libFuzzer targets (fuzz/), clang, in build-fuzz; FUZZ_SECONDS per target (default 60).
fuzz:
	@scripts/run-fuzz

bench: build
	cmake --build $(BUILD) -j $(JOBS) --target benchmarks
	@scripts/run-benchmarks $(BUILD)

bench-adapt: build
	@scripts/bench-adapt $(BUILD)

demo: build
	@scripts/demo $(BUILD)

install: build
	cmake --install $(BUILD)

format:
	@git ls-files '*.cpp' '*.hpp' | xargs clang-format -i

clean:
	rm -rf $(BUILD) build-fuzz build-asan
