#!/bin/bash
# tense finding on/off, new adapter, code e5e95c6 (/tmp/wt12)
set -e
A=/tmp/tune11/r64-bf16.safetensors; OUT=/tmp/ev12
cd /tmp/wt12
export METAGEN_HOME=/tmp/mghome PYTHONPATH=/tmp/wt12
W="worlds/ashenmere.yaml worlds/harbour/world.yaml worlds/nexus-hub.yaml"
PY=/work/main/.venv/bin/python
COMMON="--max-requests 1 --no-baseline --max-tokens 480 --adapter $A -q"
for step in "$@"; do
case $step in
scene-w) $PY /tmp/ev11/tense_off.py eval $W --seeds 10 --kinds scene $COMMON --out $OUT/scene-w$TENSE_WEIGHT ;;
story-w) $PY /tmp/ev11/tense_off.py eval $W --seeds 5 --kinds story $COMMON --out $OUT/story-w$TENSE_WEIGHT ;;
story2-w) $PY /tmp/ev11/tense_off.py two eval $W --seeds 5 --kinds story $COMMON --out $OUT/story2-w$TENSE_WEIGHT ;;
scene-off) $PY /tmp/ev11/tense_off.py eval $W --seeds 10 --kinds scene $COMMON --out $OUT/scene-off ;;
scene-on) $PY /tmp/ev11/tense_on.py eval $W --seeds 10 --kinds scene $COMMON --out $OUT/scene-on ;;
story-off) $PY /tmp/ev11/tense_off.py eval $W --seeds 5 --kinds story $COMMON --out $OUT/story-off ;;
story-on) $PY /tmp/ev11/tense_on.py eval $W --seeds 5 --kinds story $COMMON --out $OUT/story-on ;;
story2-off) $PY /tmp/ev11/tense_off.py two eval $W --seeds 5 --kinds story $COMMON --out $OUT/story2-off ;;
story2-on) $PY /tmp/ev11/tense_on.py two eval $W --seeds 5 --kinds story $COMMON --out $OUT/story2-on ;;
esac
echo "done $step $(date +%T)"
done
