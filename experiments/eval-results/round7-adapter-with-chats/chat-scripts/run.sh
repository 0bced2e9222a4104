#!/bin/bash
# usage: run.sh ADAPTER OUTDIR  -> OUTDIR/<char>-<seed>.jsonl
adapter=$1; out=$2; mkdir -p $out
cd "$(git rev-parse --show-toplevel)"
export METAGEN_NO_SERVER=1
for spec in "worlds/ashenmere.yaml brannoc" "worlds/ashenmere.yaml maelle" "worlds/harbour/world.yaml bea" "worlds/harbour/world.yaml jonas" "worlds/nexus-hub.yaml pip" "worlds/nexus-hub.yaml ottoline-graves"; do
  set -- $spec
  script=experiments/eval-results/round7-adapter-with-chats/chat-scripts/${2%%-*}.txt
  for seed in 1 2 3 4 5; do
    .venv/bin/metagen chat $1 --as $2 --script $script --json --seed $seed --adapter $adapter --out $out/sessions > $out/$2-$seed.jsonl 2> $out/$2-$seed.err || echo "FAIL $2 $seed" >> $out/fail.txt
  done
done
