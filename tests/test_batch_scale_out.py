"""docs/batch.md's "Scale out" section: its GNU parallel lines run for real on a tiny model; its Slurm
script and Kubernetes Job are run for every array id and index with a stand-in metagen that records
the shard each asks for."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from metagen import batch

from conftest import files_in, write_tiny_gguf

ROOT = Path(__file__).resolve().parent.parent
SECTION = (ROOT / "docs" / "batch.md").read_text(encoding="utf-8").split("## Scale out\n", 1)[1].split("\n## ", 1)[0]


def code_block(lang: str, marker: str) -> str:
    """The one fenced block of the section in lang that holds marker."""
    blocks = [b for b in re.findall(rf"```{lang}\n(.*?)```", SECTION, re.S) if marker in b]
    assert len(blocks) == 1, f"expected one ```{lang} block with {marker!r} in the Scale out section"
    return blocks[0]


def write_command(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(body, encoding="utf-8")
    path.chmod(0o755)
    return path


@pytest.fixture
def stub_path(tmp_path) -> tuple[dict, Path]:
    """An environment whose `metagen` only appends its arguments, as a JSON line, to the log returned."""
    bin_dir, log = tmp_path / "stub-bin", tmp_path / "calls.jsonl"
    bin_dir.mkdir()
    write_command(bin_dir, "metagen", f"#!{sys.executable}\nimport json, sys\n"
                                      f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, log


def recorded_calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def check_shards(calls: list[list[str]], n: int) -> None:
    """One `metagen batch` call per shard 1/n..n/n, each shard once, identical but for --shard, with --resume."""
    assert len(calls) == n
    shards, rests = [], set()
    for call in calls:
        assert call[:1] == ["batch"] and "--resume" in call and "--out" in call
        i = call.index("--shard")
        shards.append(batch.parse_shard(call[i + 1]))
        rests.add(tuple(call[:i] + call[i + 2:]))
    assert sorted(shards) == [(k, n) for k in range(1, n + 1)]
    assert len(rests) == 1  # same jobs file, same flags, same output folder


def test_slurm_array_runs_every_shard_once(tmp_path, stub_path):
    env, log = stub_path
    script = code_block("bash", "#SBATCH --array")
    first, last = map(int, re.search(r"^#SBATCH --array=(\d+)-(\d+)$", script, re.M).groups())
    path = write_command(tmp_path, "metagen-batch.sh", script)
    for task in range(first, last + 1):  # what Slurm sets for each array task
        slurm = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_CPUS_PER_TASK": "4"}
        done = subprocess.run(["bash", str(path)], env={**os.environ, **env, **slurm}, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    check_shards(recorded_calls(log), last - first + 1)


def test_indexed_job_maps_indexes_from_zero_to_shards_from_one(tmp_path, stub_path):
    env, log = stub_path
    job = yaml.safe_load(code_block("yaml", "kind: Job"))
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    command = container["command"] + container["args"]
    assert shutil.which(command[0]), command
    pod_env = {e["name"]: e["value"] for e in container["env"]}
    for index in range(spec["completions"]):  # what the Job controller sets for each pod
        done = subprocess.run(command, env={**os.environ, **env, **pod_env, "JOB_COMPLETION_INDEX": str(index)},
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    calls = recorded_calls(log)
    check_shards(calls, spec["completions"])
    # the output folder and the model cache are on the volume every pod mounts, and it is one shared claim
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claims = {v["name"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    out = calls[0][calls[0].index("--out") + 1]
    for folder in (out, pod_env["METAGEN_HOME"]):
        assert any(name in claims and folder.startswith(path + "/") for name, path in mounts.items()), folder


@pytest.mark.skipif(shutil.which("parallel") is None, reason="GNU parallel is not installed (apt-get install parallel)")
def test_gnu_parallel_lines_write_what_one_run_writes(tmp_path):
    """The documented lines, as they are, with the tiny model's flags added to each metagen command."""
    lines = code_block("sh", "parallel metagen batch").strip().splitlines()
    assert [line.split()[0] for line in lines] == ["metagen", "parallel", "diff"]
    assert "--resume" in lines[1].split() and "{}/" in lines[1]
    model = write_tiny_gguf(tmp_path / "long.gguf", max_seq_len=4096)  # room for examples/jobs.yaml's prompts
    flags = f" --model {shlex.quote(str(model))} --dtype float32"
    lines[0] += flags
    lines[1] = lines[1].replace(" ::: ", flags + " ::: ", 1)
    assert lines[1].count(flags) == 1
    # The lines are run from the repository's root: its examples and worlds, outputs in a scratch folder.
    for name in ("examples", "worlds"):
        (tmp_path / name).symlink_to(ROOT / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_command(bin_dir, "metagen", f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m metagen \"$@\"\n")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(lines)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "same"
    whole, shared = tmp_path / "out" / "whole", tmp_path / "out" / "shared"
    names = [p.relative_to(whole) for p in files_in(whole)]
    assert len(names) == 7 and names == [p.relative_to(shared) for p in files_in(shared)]
    for shard in (1, 2, 3):
        assert f"(shard {shard}/3)" in done.stderr
    # the diff line's filter lets through the two timing lines only: a changed text is told apart
    victim = shared / names[0]
    victim.write_text(victim.read_text(encoding="utf-8") + "x", encoding="utf-8")
    again = subprocess.run(["bash", "-c", lines[2]], cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode != 0 and "same" not in again.stdout
