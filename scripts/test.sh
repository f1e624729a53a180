#!/usr/bin/env bash
# Set up a virtual environment (CPU torch) and run the test suite. Used by CI and by developers.
# The [dev] extras include the demo (gradio) and the playwright client; the browser tests drive Debian's
# /usr/bin/chromium (`apt-get install chromium`; .ci/run installs it) and skip outside CI without it.
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
.venv/bin/python -m pytest -q "$@"
