#!/usr/bin/env bash
# The test command (README's second command; `.ci/run` calls it).
# Builds and runs every test: unit, integration (tests/), doc tests, and each benchmark once
# in test mode, so that benchmark code cannot rot.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --all-targets
cargo test --locked --doc
