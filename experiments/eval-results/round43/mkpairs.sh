#!/bin/bash
# mkpairs.sh: blind pairs base vs kin into /tmp/r43/read, key aside
set -e
R=/tmp/r43/read; rm -rf $R /tmp/r43/key; mkdir -p /tmp/r43/key
cd /work/main/experiments/eval-results/round41
/work/main/.venv/bin/python cli_pairs.py /tmp/r43/out/base.jsonl /tmp/r43/out/kin.jsonl $R 4301 "0.25.1" "kin guard" "a story set in this world; the request named no characters and no place"
mv $R/key.json /tmp/r43/key/key.json
cp /work/main/worlds/nexus-hub.yaml /work/main/worlds/ashenmere.yaml $R/
cp /work/main/worlds/harbour/characters.yaml /work/main/worlds/harbour/locations.yaml /work/main/worlds/harbour/lore.yaml $R/ && cp /work/main/worlds/harbour/world.yaml $R/saltgate.yaml
cp /work/main/corpus/worlds/h2-copperleaf-terraces.yaml /work/main/corpus/worlds/h4-quillon-halt.yaml /work/main/corpus/worlds/h5-linden-apiary.yaml /work/main/corpus/worlds/h6-solenne-kite-market.yaml $R/
ls $R | head -40
