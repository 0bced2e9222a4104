"""merge.py BLIND_DIR READ_DIR...: the readers' filled ratings.csv rows into BLIND_DIR/ratings.csv."""
import csv
import sys
from pathlib import Path

rows = {}
for folder in sys.argv[2:]:
    with open(Path(folder) / "ratings.csv", newline="") as f:
        for row in csv.DictReader(f):
            rows[row["pair"]] = row
target = Path(sys.argv[1]) / "ratings.csv"
with open(target, newline="") as f:
    order = [row["pair"] for row in csv.DictReader(f)]
missing = [p for p in order if not rows.get(p, {}).get("preferred")]
with open(target, "w", newline="") as f:
    writer = csv.DictWriter(f, ["pair", "preferred", "note"], quoting=csv.QUOTE_MINIMAL)
    writer.writeheader()
    for p in order:
        writer.writerow({k: rows.get(p, {}).get(k, "") if k != "pair" else p for k in ("pair", "preferred", "note")})
print(len(order) - len(missing), "rated;", "missing: " + ", ".join(missing) if missing else "none missing")
