#!/bin/bash
# a new process to its first token: HEAD (/tmp/wt-head, cache v4 in /tmp/mghome) against the working tree
# (/work/main, its cache in /tmp/mghome-new), alternating, N runs each. With `metagen serve` running on both
# METAGEN_HOMEs the same loop times the served call (round 29 ran it so, `first_token.sh 7`).
N=${1:-5}
for i in $(seq $N); do
 for side in head new; do
  if [ $side = head ]; then pp=/tmp/wt-head; home=/tmp/mghome; else pp=/work/main; home=/tmp/mghome-new; fi
  s=$(date +%s.%N)
  (cd $pp && METAGEN_HOME=$home PYTHONPATH=$pp /work/main/.venv/bin/python -m metagen describe-scene worlds/ashenmere.yaml --location crooked-kettle --max-tokens 1 --candidates 1 --stdout > /dev/null 2>&1)
  e=$(date +%s.%N)
  echo "$side $i $(echo "$e - $s" | bc)"
 done
done
