#!/bin/bash
# units.sh LABEL ADAPTER: the scenes (WORLD PLACE SEED) of /tmp/r47/scenes.txt and the dialogues
# (WORLD CAST PLACE SEED) of /tmp/r47/dialogues.txt, with --adapter ADAPTER, from /work/main's code
export METAGEN_HOME=/tmp/r47/home
cd /work/main
label=$1 adapter=$2
mkdir -p /tmp/r47/out/$label-scene /tmp/r47/out/$label-dialogue
while read w l s; do
  .venv/bin/python -m metagen --no-server describe-scene $w --location $l --seed $s --adapter $adapter -o /tmp/r47/out/$label-scene -q --json >> /tmp/r47/out/$label-scene.jsonl < /dev/null
done < /tmp/r47/scenes.txt
while read w c l s; do
  .venv/bin/python -m metagen --no-server dialogue $w --characters $c --location $l --seed $s --adapter $adapter -o /tmp/r47/out/$label-dialogue -q --json >> /tmp/r47/out/$label-dialogue.jsonl < /dev/null
done < /tmp/r47/dialogues.txt
