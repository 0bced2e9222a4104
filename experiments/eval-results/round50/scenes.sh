#!/bin/bash
# scenes.sh TREE LABEL: metagen eval's scenes on the seven worlds from TREE's code
export METAGEN_HOME=/tmp/r47/home
cd $1
W="worlds/nexus-hub.yaml worlds/ashenmere.yaml worlds/harbour/world.yaml corpus/worlds/h2-copperleaf-terraces.yaml corpus/worlds/h4-quillon-halt.yaml corpus/worlds/h5-linden-apiary.yaml corpus/worlds/h6-solenne-kite-market.yaml"
PYTHONPATH=$1 /work/main/.venv/bin/python -m metagen --no-server eval $W --seeds 4 --max-requests 2 --kinds scene --no-baseline --out /tmp/r50/scenes-$2 < /dev/null
