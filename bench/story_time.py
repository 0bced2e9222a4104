"""The README's story, timed against an older metagen: issue 13's time target (a default story at
most 2x the time of the commit before the work began, 166783e).

Each side runs the README's first story command as a new process (`metagen story
worlds/ashenmere.yaml --characters ysolde,maelle --location crooked-kettle --seed 7`), from its own
git worktree and its own METAGEN_HOME (the baseline converts the model in its own layout), after
one untimed run each; then the sides alternate, so a busy moment costs both alike. Prints the
times, the medians, their ratio and the CPU flags; writes nothing into the repository.

    python bench/story_time.py [--baseline COMMIT] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from bench import kernel_flags  # noqa: E402  (bench.py, beside this file: the script's own folder is on sys.path)

STORY = ["story", "worlds/ashenmere.yaml", "--characters", "ysolde,maelle", "--location", "crooked-kettle",
         "--seed", "7", "--stdout"]


def run_story(code: Path, home: Path, options: list[str]) -> tuple[float, int]:
    """Seconds for one story in a new process, and the words it wrote."""
    env = {**os.environ, "PYTHONPATH": str(code), "METAGEN_HOME": str(home)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "metagen", *options, *STORY], cwd=code, env=env,
                          capture_output=True, text=True, check=True)
    return time.perf_counter() - start, len(done.stdout.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="166783e", help="the older commit (default: before issue 13)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs a side (default 3)")
    args = parser.parse_args()

    home = Path(os.environ.get("METAGEN_HOME", Path.home() / ".cache" / "metagen"))
    scratch = Path(tempfile.mkdtemp(prefix="story-time-"))
    old_code, old_home = scratch / "baseline", scratch / "home"
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(old_code), args.baseline], cwd=ROOT, check=True)
    try:
        # The baseline reads the same model file; only its converted copy is its own.
        shutil.copytree(home / "models", old_home / "models", copy_function=os.link)
        # Today's metagen would hand the story to a running `metagen serve`: time it in its own process.
        sides = {"baseline": (old_code, old_home, []), "now": (ROOT, home, ["--no-server"])}
        for side in sides.values():
            run_story(*side)  # untimed: converts the model on first use, warms the page cache
        times: dict[str, list[float]] = {side: [] for side in sides}
        for i in range(args.runs):
            for side, (code, side_home, options) in sides.items():
                seconds, words = run_story(code, side_home, options)
                times[side].append(seconds)
                print(f"{side} run {i + 1}: {seconds:.2f} s, {words} words", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old_code)], cwd=ROOT, check=False)
        shutil.rmtree(scratch, ignore_errors=True)

    old, new = statistics.median(times["baseline"]), statistics.median(times["now"])
    flags = [flag for flag, present in kernel_flags().items() if present]
    print(f"\nmedian: {args.baseline} {old:.2f} s, now {new:.2f} s: {new / old:.2f}x (target <= 2x)")
    print(f"CPU flags: {' '.join(flags)}; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
