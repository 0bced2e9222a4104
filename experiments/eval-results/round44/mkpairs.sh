#!/bin/bash
# mkpairs.sh: blind pairs, round 44's named-twice code against the finish finding, into /tmp/r44/read (key aside)
set -e
R=/tmp/r44/read; rm -rf $R /tmp/r44/key; mkdir -p /tmp/r44/key
cat /tmp/r44/out/tw2a.jsonl /tmp/r44/out/tw2b.jsonl > /tmp/r44/out/tw2.jsonl
cat /tmp/r44/out/fina.jsonl /tmp/r44/out/finb.jsonl > /tmp/r44/out/fin.jsonl
cd /work/main/experiments/eval-results/round41
/work/main/.venv/bin/python cli_pairs.py /tmp/r44/out/tw2.jsonl /tmp/r44/out/fin.jsonl $R 4401 "named twice" "finish" "a story set in this world; the request named no characters and no place"
mv $R/key.json /tmp/r44/key/key.json
cp /work/main/worlds/nexus-hub.yaml /work/main/worlds/ashenmere.yaml $R/
cp /work/main/worlds/harbour/characters.yaml /work/main/worlds/harbour/locations.yaml /work/main/worlds/harbour/lore.yaml $R/ && cp /work/main/worlds/harbour/world.yaml $R/saltgate.yaml
cp /work/main/corpus/worlds/h2-copperleaf-terraces.yaml /work/main/corpus/worlds/h4-quillon-halt.yaml /work/main/corpus/worlds/h5-linden-apiary.yaml /work/main/corpus/worlds/h6-solenne-kite-market.yaml $R/
ls $R | wc -l
