#!/bin/bash
# mkpairs.sh A.jsonl B.jsonl NAME SEED NEWLABEL: blind pairs into /tmp/r49/NAME-a and -b (copies), key in /tmp/r49/key-NAME
set -e
R=/tmp/r49/$3; rm -rf $R ${R}-a ${R}-b /tmp/r49/key-$3; mkdir -p /tmp/r49/key-$3
cd /work/main/experiments/eval-results/round41
/work/main/.venv/bin/python cli_pairs.py $1 $2 $R $4 "before" "$5" "a story set in this world; the request named no characters and no place"
mv $R/key.json /tmp/r49/key-$3/key.json
cp /work/main/worlds/nexus-hub.yaml /work/main/worlds/ashenmere.yaml $R/
cp /work/main/worlds/harbour/characters.yaml /work/main/worlds/harbour/locations.yaml /work/main/worlds/harbour/lore.yaml $R/ && cp /work/main/worlds/harbour/world.yaml $R/saltgate.yaml
cp /work/main/corpus/worlds/h2-copperleaf-terraces.yaml /work/main/corpus/worlds/h4-quillon-halt.yaml /work/main/corpus/worlds/h5-linden-apiary.yaml /work/main/corpus/worlds/h6-solenne-kite-market.yaml $R/
cp -r $R ${R}-a; mv $R ${R}-b
ls ${R}-a | grep -c pair
