import os, sys
import metagen
import metagen.threads as T
count = int(os.environ["FORCE_COUNT"])
T.thread_counts = lambda available: (count,)
from metagen.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
