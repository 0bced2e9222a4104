#!/bin/bash
# Run one metagen command on an emulated CPU (qemu user mode), timed, TCG warnings dropped.
# usage: cpu_emul.sh CPU HOME ARGS...   e.g. cpu_emul.sh Haswell-v4 /tmp/mghome38-haswell describe-scene ...
# CPU "native" runs it on this machine's CPU. Prints the exit code and wall seconds last.
cpu=$1 home=$2; shift 2
cd "$(dirname "$0")/../../.."
export METAGEN_HOME="$home" METAGEN_NO_SERVER=1 PYTHONPATH="$PWD"
py=/work/main/.venv/bin/python
start=$(date +%s.%N)
if [ "$cpu" = native ]; then "$py" -m metagen "$@"; else
  qemu-x86_64-static -cpu "$cpu" "$py" -m metagen "$@" 2> >(grep --line-buffered -v "TCG doesn't support" >&2); fi
rc=$?
echo "rc=$rc wall_s=$(echo "$(date +%s.%N) - $start" | bc)" >&2
