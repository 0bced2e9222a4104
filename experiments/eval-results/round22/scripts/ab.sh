#!/bin/bash
# alternate base and new README story runs; save texts and times
cd /work/main
for i in 1 2 3; do
 for side in base new; do
  if [ $side = base ]; then pp=/tmp/wt-base; else pp=/work/main; fi
  s=$(date +%s.%N)
  (cd $pp && METAGEN_HOME=/tmp/mghome PYTHONPATH=$pp /work/main/.venv/bin/python -m metagen story worlds/ashenmere.yaml --characters ysolde,maelle --location crooked-kettle --seed 7 --stdout > /tmp/r22/story-$side-$i.md 2>/dev/null)
  e=$(date +%s.%N)
  echo "$side $i $(echo "$e - $s" | bc)"
 done
done
