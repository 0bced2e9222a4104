#!/bin/bash
# golden_cmp.sh A B: every file's text the same, but for timings, dates, versions and paths
for f in $(cd "$1" && find . -type f | sort); do
  if diff -q <(grep -v -E '^(seconds|created|metagen_version):|^    path:|"seconds"' "$1/$f") <(grep -v -E '^(seconds|created|metagen_version):|^    path:|"seconds"' "$2/$f") >/dev/null; then echo "same $f"; else echo "DIFF $f"; fi
done
