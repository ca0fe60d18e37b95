# Kindling: `make dev` runs the whole function set locally, `make test` passes every test.
SHELL := /bin/bash
WASM_CRATES := -p kindling -p kindling-edge -p track -p forms -p engine -p deliver -p api
DEV_STATE ?= .state/dev
DEV_PORT ?= 8787

.PHONY: bootstrap build dev test lint unit fuzz integration dry-run deploy bench clean

bootstrap:
	@scripts/bootstrap.sh

build: bootstrap
	@scripts/build.sh

dev: build
	@scripts/stack.sh $(DEV_STATE) $(DEV_PORT)

test: build lint unit fuzz dry-run integration

lint: bootstrap
	cargo fmt --all --check
	cargo clippy -p kindling --all-targets --features sqlite -- -D warnings
	cargo clippy -p kindling-edge --all-targets -- -D warnings
	cargo clippy --target wasm32-unknown-unknown $(WASM_CRATES) -- -D warnings

unit:
	cargo test -p kindling --features sqlite --lib
	cargo test -p kindling-edge --lib

# Property-based fuzzing of every input parser, ≥ 1,000,000 inputs (release: it is CPU-bound).
fuzz:
	cargo test --release -p kindling --features sqlite --test fuzz

integration: build
	cargo test -p kindling --features sqlite --test stack

dry-run: build
	@scripts/deploy.sh --dry-run

deploy: build
	@scripts/deploy.sh

bench: bootstrap
	@bench/run.sh

clean:
	rm -rf target .state functions/*/build
