#!/bin/bash
# a new process to its first token, before (bf7c6b1) and after (f5fdbdc) the shared vocabulary bytes, alternating
for i in 1 2 3 4 5; do
 for side in before after; do
  if [ $side = before ]; then pp=/tmp/wt-before; else pp=/work/main; fi
  s=$(date +%s.%N)
  (cd $pp && METAGEN_HOME=/tmp/mghome PYTHONPATH=$pp /work/main/.venv/bin/python -m metagen describe-scene worlds/ashenmere.yaml --location crooked-kettle --max-tokens 1 --candidates 1 --stdout > /dev/null 2>&1)
  e=$(date +%s.%N)
  echo "$side $i $(echo "$e - $s" | bc)"
 done
done
