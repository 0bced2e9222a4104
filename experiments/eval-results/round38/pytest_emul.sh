#!/bin/bash
# Run pytest on an emulated CPU (qemu user mode), TCG warnings dropped.
# usage: pytest_emul.sh CPU PYTEST_ARGS...   e.g. pytest_emul.sh Haswell-v4 -q tests/test_model.py
# Tests that start a subprocess (sys.executable) run that child natively on the real CPU.
cpu=$1; shift
cd "$(dirname "$0")/../../.."
export PYTHONPATH="$PWD" METAGEN_NO_SERVER=1
start=$(date +%s.%N)
qemu-x86_64-static -cpu "$cpu" /work/main/.venv/bin/python -m pytest -p no:cacheprovider "$@" \
  2> >(grep --line-buffered -v "TCG doesn't support" >&2)
rc=$?
echo "rc=$rc wall_s=$(echo "$(date +%s.%N) - $start" | bc)" >&2
