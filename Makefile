# Weir's entry points. `make setup` installs what a fresh Debian machine lacks; `make test`
# runs everything CI runs; `make demo` runs the notebook's job on generated data.

CARGO ?= cargo
PYTHON ?= python3
DEMO := examples/shop_sales

.PHONY: setup build release test lint doc demo clean-demo

setup:
	@bash scripts/setup.sh

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release

# Formatting, lints (warnings are errors), docs, then every unit, integration and
# end-to-end test. .ci/run calls exactly this target.
test: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --quiet
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

# The notebook's job: fresh sample data, then `weir run` with the available_now trigger.
demo: setup release clean-demo
	$(PYTHON) $(DEMO)/generate.py $(DEMO)/data/stream_read --files 6 --rows 1000 --shops 60
	$(CARGO) run --release --quiet -- run $(DEMO)/pipeline.toml
	$(CARGO) run --release --quiet -- show $(DEMO)/data/stream_write --num-rows 10

clean-demo:
	rm -rf $(DEMO)/data $(DEMO)/state
