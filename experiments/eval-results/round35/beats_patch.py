"""metagen with a medium story planned in MEDIUM_BEATS beats (default 3: opening, turn, ending)
instead of 4; everything else as it is."""
import os, sys
from metagen import plan as P
P.BEATS_BY_LENGTH = {**P.BEATS_BY_LENGTH, "medium": int(os.environ.get("MEDIUM_BEATS", "3"))}
from metagen.cli import app
app(sys.argv[1:], standalone_mode=False)
