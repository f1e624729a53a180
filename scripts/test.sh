#!/usr/bin/env bash
# Set up a virtual environment (CPU torch) and run the test suite. Used by CI and by developers.
# The [dev] extras include the demo (gradio) and the playwright client; the browser tests drive Debian's
# /usr/bin/chromium (`apt-get install chromium`; .ci/run installs it) and skip outside CI without it.
# `bash scripts/test.sh --avx2` reruns the tests marked `numerics` with AVX2 kernels forced (torch, MKL and
# oneDNN), as on AVX2-only CPUs; CI runs both passes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# torch from the PyTorch CPU wheel index (PyPI's Linux torch is a CUDA build of several GB); another build:
# TORCH_INDEX=https://download.pytorch.org/whl/cu130 bash scripts/test.sh
.venv/bin/python -m pip install -q --disable-pip-version-check --retries 1 torch==2.13.0 \
  --index-url "${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
.venv/bin/ruff check regionspot tests benchmarks scripts
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
# torch.compile's kernel cache, fresh for each pass: its key ignores ATEN_CPU_CAPABILITY, and kernels compiled
# under forced AVX2 abort the process when a later run loads them.
TORCHINDUCTOR_CACHE_DIR="$(mktemp -d -t regionspot-inductor-XXXXXX)"
export TORCHINDUCTOR_CACHE_DIR
trap 'rm -rf "$TORCHINDUCTOR_CACHE_DIR"' EXIT
if [ "${1:-}" = "--avx2" ]; then
  shift
  export ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2
  echo "forced AVX2 kernels: torch $(.venv/bin/python -c 'import torch; print(torch.backends.cpu.get_cpu_capability())')"
  set -- -m numerics "$@"
fi
.venv/bin/python -m pytest -q "$@"
