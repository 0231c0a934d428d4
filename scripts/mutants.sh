#!/usr/bin/env bash
# Kept for muscle memory: the mutant runner lives in tests/mutants/run.sh.
exec bash "$(dirname "$0")/../tests/mutants/run.sh" "$@"
