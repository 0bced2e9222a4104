#!/bin/bash
# CLI commands, old tree against new, alternating; wall seconds and whether the texts match
export METAGEN_HOME=/tmp/mghome-new
run() { # tree name cmd...
  local tree=$1 name=$2; shift 2
  rm -rf /tmp/r32/cli/$name; mkdir -p /tmp/r32/cli
  local t0=$(date +%s.%N)
  (cd $tree && PYTHONPATH=$tree /work/main/.venv/bin/python -m metagen "$@" --out /tmp/r32/cli/$name -q) || echo FAIL
  local t1=$(date +%s.%N)
  local f=$(find /tmp/r32/cli/$name -type f -name '*.md' | head -1)
  echo "$name $(echo "$t1 - $t0" | bc) $(sed -e '/^seconds:/d' -e '/^created:/d' -e '/^- \//d' -e '/path: \//d' $f | md5sum | cut -c1-8)"
}
for rep in 1 2; do
  for c in "dialogue worlds/ashenmere.yaml --characters ysolde,maelle --seed 1" "describe-scene worlds/nexus-hub.yaml --seed 2"; do
    k=$(echo $c | cut -d' ' -f1-2 | tr ' /' '__')
    run /tmp/r32/old old-$k-$rep $c
    run /work/main new-$k-$rep $c
  done
done
