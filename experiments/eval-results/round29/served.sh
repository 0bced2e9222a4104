#!/bin/bash
# describe-scene --max-tokens 1 with metagen serve running: HEAD's server and client against the working tree's, alternating
N=${1:-7}
for i in $(seq $N); do
 for side in head new; do
  if [ $side = head ]; then pp=/tmp/wt-head; home=/tmp/mghome; else pp=/work/main; home=/tmp/mghome-new; fi
  s=$(date +%s.%N)
  (cd $pp && METAGEN_HOME=$home PYTHONPATH=$pp /work/main/.venv/bin/python -m metagen describe-scene worlds/ashenmere.yaml --location crooked-kettle --max-tokens 1 --candidates 1 --stdout > /dev/null 2>&1)
  e=$(date +%s.%N)
  echo "$side $i $(echo "$e - $s" | bc)"
 done
done
