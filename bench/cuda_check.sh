#!/usr/bin/env bash
# Run on a GPU machine (the device tool): the CUDA tests, then decode speed of a model with
# SmolLM2-135M's exact shape (random weights: the real GGUF is too large to carry there).
# Needs: torch with CUDA, tokenizers, typer, rich, pyyaml, jinja2, safetensors, pytest;
# gguf is installed from a wheel carried in .device/ when missing.
set -uo pipefail
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD"
python3 -c "import gguf" 2>/dev/null || python3 -m pip install -q --no-deps --no-index .device/gguf-*.whl
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_model.py tests/test_search.py tests/test_beam.py 2>&1 | tail -15
python3 bench/cuda_speed.py 2>&1 | tee "${OUT:-/tmp}/cuda_speed.txt"
