#!/bin/sh
# split.sh BLIND_DIR READ_PREFIX N [WORLD.yaml ...]: N reader folders READ_PREFIX-1.. with a share of
# the pairs, a ratings.csv of their rows and the worlds they name: the given world files, or by
# default the example worlds (Saltgate's split files as saltgate*.yaml).
set -e
blind=$1; prefix=$2; n=$3; shift 3; root=$(cd "$(dirname "$0")/../../.." && pwd)
total=$(ls "$blind"/pair-*.md | wc -l)
i=0
for f in $(ls "$blind"/pair-*.md); do
  k=$(( i * n / total + 1 )); d="$prefix-$k"; mkdir -p "$d"
  cp "$f" "$d/"; i=$((i+1))
done
for k in $(seq 1 "$n"); do
  d="$prefix-$k"
  if [ $# -gt 0 ]; then
    cp "$@" "$d/"
  else
    cp "$root/worlds/ashenmere.yaml" "$root/worlds/nexus-hub.yaml" "$d/"
    cp "$root/worlds/harbour/world.yaml" "$d/saltgate.yaml"
    for p in characters locations lore; do cp "$root/worlds/harbour/$p.yaml" "$d/saltgate-$p.yaml"; done
  fi
  echo "pair,preferred,note" > "$d/ratings.csv"
  for f in "$d"/pair-*.md; do echo "$(basename "$f" .md),," >> "$d/ratings.csv"; done
done
