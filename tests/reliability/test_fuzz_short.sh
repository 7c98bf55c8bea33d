#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Short, reproducible run of every parser fuzz harness (fixed seed, bounded
# input count): replays the seed corpus in tests/fuzz/corpus and explores a
# little beyond it, so a regression in a parser shows up in make test.
# make fuzz runs the same harnesses for minutes.
cd "$(dirname "$0")/../.." || exit 1
BUILD=$(realpath --relative-to=. "${AIBL_BUILD:-build}") tests/fuzz/run.sh --runs "${FUZZ_RUNS:-50000}"
