# Weir's entry points. `make setup` installs what a fresh Debian machine lacks; `make test`
# runs everything CI runs; `make demo` runs the notebook's job on generated data.

CARGO ?= cargo
PYTHON ?= python3
DEMO := examples/shop_sales
# The release binary, wherever CARGO_TARGET_DIR puts it.
WEIR = $(or $(CARGO_TARGET_DIR),target)/release/weir

.PHONY: setup build release test lint doc demo clean-demo bench

setup:
	@bash scripts/setup.sh

build:
	$(CARGO) build --workspace --all-targets

# --workspace everywhere: the same selection of packages keeps the same dependency features,
# so RocksDB's C++ build is reused instead of redone.
release:
	$(CARGO) build --release --workspace

# The tests that mount a tmpfs need root: as root they run, as anyone else the test runner
# counts them as ignored, with the reason.
ROOT_ONLY_TESTS := $(if $(filter 0,$(shell id -u)),-- --include-ignored,)

# Formatting, lints (warnings are errors), docs, then every unit, integration and
# end-to-end test. .ci/run calls exactly this target.
test: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --quiet
	$(CARGO) test --workspace --all-targets $(ROOT_ONLY_TESTS)
	$(CARGO) test --workspace --doc

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

# The notebook's job: fresh sample data, then `weir run` with the available_now trigger.
demo: setup release clean-demo
	$(PYTHON) $(DEMO)/generate.py $(DEMO)/data/stream_read --files 6 --rows 1000 --shops 60
	$(WEIR) run $(DEMO)/pipeline.toml
	$(WEIR) show $(DEMO)/data/stream_write --num-rows 10

# The benchmark (bench/README.md): data generated once into bench/data, results printed and
# written to bench/results.md. BENCH_ARGS passes options, e.g. BENCH_ARGS="--files 8".
bench: setup release
	$(PYTHON) bench/run.py --weir $(WEIR) $(BENCH_ARGS)

clean-demo:
	rm -rf $(DEMO)/data $(DEMO)/state
