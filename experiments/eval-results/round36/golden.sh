#!/bin/sh
# golden.sh OUTDIR [PYTHONPATH]: the reference texts; compare with golden_cmp.sh
set -e
# `python -m` puts the working folder first on sys.path: run from the tree whose code is meant (round
# forty-one found that a PYTHONPATH given here had run /work/main's code, from the cd below).
out=$1; mkdir -p "$out"; cd "${2:-/work/main}"
M="/work/main/.venv/bin/python -m metagen"
export METAGEN_HOME=/tmp/mghome35
[ -n "$2" ] && export PYTHONPATH=$2
$M story worlds/ashenmere.yaml --characters ysolde,maelle --location crooked-kettle --seed 7 -o "$out/story" -q
$M describe-scene worlds/nexus-hub.yaml --location atrium --seed 3 -n 2 -o "$out/scene" -q
$M dialogue worlds/harbour/world.yaml --characters jonas,bea --location night-market --seed 2 -o "$out/dialogue" -q
$M story corpus/worlds/h4-quillon-halt.yaml --seed 5 --length short -o "$out/story2" -q
$M prompt story worlds/ashenmere.yaml --characters ysolde,maelle --location crooked-kettle --seed 7 > "$out/prompt-story.txt"
