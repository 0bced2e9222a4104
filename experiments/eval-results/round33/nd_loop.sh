#!/bin/bash
cd /work/main
for i in $(seq 1 ${N:-100}); do
  d=/tmp/r33/nd/o$i; rm -rf $d
  PYTHONHASHSEED=$((i+1000)) TRACE=/tmp/r33/nd/trace$i.json METAGEN_HOME=/tmp/mghome-new .venv/bin/python experiments/eval-results/round32/trace.py describe-scene worlds/ashenmere.yaml --location crooked-kettle --seed 1 --out $d -q 2>/dev/null
  f=$(find $d -type f | head -1)
  h=$(grep -v "^seconds:\|^created:" $f | md5sum | cut -c1-8)
  echo "$i $h $(md5sum < /tmp/r33/nd/trace$i.json | cut -c1-8) $(grep '^seconds:' $f)" >> /tmp/r33/nd/hashes.txt
done
