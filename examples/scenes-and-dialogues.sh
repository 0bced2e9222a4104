#!/usr/bin/env bash
# A scene for every location of a world and a dialogue for every pair of its characters,
# made by one `metagen batch` run (see docs/batch.md). Extra arguments go to metagen batch.
#
#   examples/scenes-and-dialogues.sh worlds/nexus-hub.yaml out --dtype float32 --resume
set -euo pipefail

world=${1:?usage: $0 WORLD.yaml [OUT] [metagen batch options...]}
out=${2:-out}
shift $(( $# < 2 ? $# : 2 ))

jobs=$(mktemp "${TMPDIR:-/tmp}/metagen-jobs.XXXXXX")
trap 'rm -f "$jobs"' EXIT

# The ids come from the world itself; JSON strings are valid YAML, so any id is quoted safely.
"${PYTHON:-python3}" - "$world" > "$jobs" <<'PY'
import itertools, json, sys
from pathlib import Path
from metagen.world import load_world

world = load_world(sys.argv[1])
q = json.dumps
print(f"world: {q(str(Path(sys.argv[1]).resolve()))}")
print("seed: 1  # fixed seeds: a rerun with --resume finishes what is missing")
print("jobs:")
for location in world.locations:
    print(f"  - {{kind: scene, location: {q(location.id)}}}")
for a, b in itertools.combinations(world.characters, 2):
    print(f"  - {{kind: dialogue, characters: [{q(a.id)}, {q(b.id)}], turns: 6}}")
PY

metagen batch "$jobs" --out "$out" "$@"
