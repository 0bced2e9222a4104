#!/bin/bash
# bare_stories.sh LABEL TREE: metagen story WORLD --seed 1..3 (no cast, no place) on the held-aside worlds, from TREE's code
# bare stories (no cast, no place): $1 = label, $2 = PYTHONPATH
export METAGEN_HOME=/tmp/mghome35 PYTHONPATH=$2
cd $2
for w in corpus/worlds/h2-copperleaf-terraces.yaml corpus/worlds/h4-quillon-halt.yaml corpus/worlds/h5-linden-apiary.yaml corpus/worlds/h6-solenne-kite-market.yaml; do
  for s in 1 2 3; do
    /work/main/.venv/bin/python -m metagen --no-server story $w --seed $s -o /tmp/r41/bare/$1 -q --json >> /tmp/r41/bare/$1.jsonl
  done
done
