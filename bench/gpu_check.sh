#!/usr/bin/env bash
# The GPU path, checked in a few minutes on a machine with one CUDA device (docs/scaling.md, "GPUs"):
#   1. one rung (L2-d64 of the smoke ladder, 64 steps) trained on CUDA in bf16 and in fp32, tokens/s printed;
#   2. evaluation parity CUDA vs CPU on the fp32 checkpoint: log-probabilities and held-out loss within 1e-4;
#   3. the smoke study with train.device: cuda, end to end (its train throughput printed);
#   4. the same with executor: ray (a local Ray instance; the train tasks ask for a GPU), if Ray is installed.
# Needs the project's pinned packages with a CUDA build of torch 2.13.0; nothing is downloaded.
#   bash bench/gpu_check.sh [OUT]        (PYTHON=... to choose the interpreter; exit 0 = every check passed)
#   DEVICE=cpu bash bench/gpu_check.sh   rehearses the script on a machine without a GPU (CPU against CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUT=${1:-$(mktemp -d /tmp/emergelab-gpu-XXXX)}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} TOKENIZERS_PARALLELISM=false
EL="$PY -m emergelab"
export DEVICE=${DEVICE:-cuda}
ONE=(--preset smoke --set "ladder=[{name: L2-d64, n_layer: 2, d_model: 64, n_head: 4}]" --set train.device=$DEVICE
     --set train.log_every=1 --stages prepare,train)

$PY - <<'EOF'
import os
import torch
if os.environ["DEVICE"] != "cuda":
    raise SystemExit(print(f"[gpu_check] rehearsal on {os.environ['DEVICE']} (no CUDA check)"))
assert torch.cuda.is_available(), f"no CUDA device visible (torch {torch.__version__}, built for CUDA {torch.version.cuda})"
print(f"[gpu_check] {torch.cuda.get_device_name(0)}; torch {torch.__version__} (CUDA {torch.version.cuda}); "
      f"bf16 supported: {torch.cuda.is_bf16_supported()}")
EOF

rate() {  # median tokens/s of a rung's logged steps after the first two
  $PY -c "import json,statistics,sys; r=[json.loads(l) for l in open(sys.argv[1])]; print(f'{statistics.median(x[\"tokens_per_s\"] for x in r[2:]):,.0f}')" "$1"
}

echo "[gpu_check] 1. one rung on $DEVICE, bf16 and fp32"
for bf16 in true false; do
  SECONDS=0
  $EL study "${ONE[@]}" --set train.bf16=$bf16 --out "$OUT/rung-bf16-$bf16" >/dev/null 2>"$OUT/rung-bf16-$bf16.log" || { tail -20 "$OUT/rung-bf16-$bf16.log"; exit 1; }
  man="$OUT/rung-bf16-$bf16/runs/L2-d64/checkpoints/step-000064/checkpoint.json"
  $PY -c "import json,sys; m=json.load(open(sys.argv[1])); assert m['device']==sys.argv[3] and m['bf16'] is (sys.argv[2]=='true'), m; print(f'[gpu_check]    bf16={sys.argv[2]}: device {m[\"device\"]}, {m[\"bf16_reason\"]}')" "$man" $bf16 $DEVICE
  echo "[gpu_check]    bf16=$bf16: $(rate "$OUT/rung-bf16-$bf16/runs/L2-d64/logs/train.jsonl") tokens/s (median step), ${SECONDS} s wall with start-up"
done

echo "[gpu_check] 2. evaluation parity $DEVICE vs CPU (fp32 checkpoint)"
$PY - "$OUT/rung-bf16-false" <<'EOF'
import os
import sys
from pathlib import Path

import numpy as np
import torch

from emergelab.layout import Layout
from emergelab.models.checkpoint import load_model

lay = Layout(Path(sys.argv[1]))
model = load_model(lay.checkpoint("L2-d64", 64)).eval()
ids = torch.from_numpy(np.asarray(lay.data_dir.blocks("heldout"), dtype=np.int64))

def logprobs(m, device):
    with torch.no_grad():
        return torch.log_softmax(m.to(device)(input_ids=ids.to(device)).logits.float(), -1).cpu()

def loss(lp):
    return -lp[:, :-1].gather(-1, ids[:, 1:, None]).mean().item()

cpu = logprobs(model, "cpu")
cuda = logprobs(model, os.environ["DEVICE"])
gap, dloss = (cpu - cuda).abs().max().item(), abs(loss(cpu) - loss(cuda))
print(f"[gpu_check]    max |log p CPU − log p CUDA| = {gap:.2e}; held-out loss CPU {loss(cpu):.6f}, CUDA {loss(cuda):.6f} (gap {dloss:.1e})")
assert gap <= 1e-4 and dloss <= 1e-4, "CUDA and CPU evaluations differ by more than 1e-4 in fp32"
EOF

echo "[gpu_check] 3. the smoke study with train.device: $DEVICE"
SECONDS=0
$EL study --preset smoke --set train.device=$DEVICE --out "$OUT/smoke-cuda" 2>"$OUT/smoke-cuda.log" || { tail -20 "$OUT/smoke-cuda.log"; exit 1; }
echo "[gpu_check]    done in ${SECONDS} s; train tokens/s per rung:"
for r in "$OUT"/smoke-cuda/runs/*/; do echo "[gpu_check]      $(basename "$r"): $(rate "$r/logs/train.jsonl")"; done
test -f "$OUT/smoke-cuda/report/index.html"

echo "[gpu_check] 4. the smoke study with train.device: $DEVICE on a local Ray instance"
if $PY -c "import ray" 2>/dev/null; then
  env -u RAY_ADDRESS $EL study --preset smoke --set train.device=$DEVICE --executor ray --out "$OUT/smoke-cuda-ray" \
    2>"$OUT/smoke-cuda-ray.log" || { tail -20 "$OUT/smoke-cuda-ray.log"; exit 1; }
  $PY -c "import json,glob,sys; d={json.load(open(p))['device'] for p in glob.glob(sys.argv[1]+'/runs/*/checkpoints/*/checkpoint.json')}; assert d=={sys.argv[2]}, d; print('[gpu_check]    every checkpoint trained on', d)" "$OUT/smoke-cuda-ray" $DEVICE
else
  echo "[gpu_check]    skipped: Ray is not installed (pip install emergelab[ray])"
fi
echo "[gpu_check] all checks passed; outputs in $OUT"
