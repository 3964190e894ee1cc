#!/usr/bin/env bash
# benchmarks/multi_gpu.py on the lent two-GPU machine (kind nvidia-h200-x2; ../shared/device/README.md).
#
# Here, once:   bash ../shared/device/prepare.sh      # .device/: wheels (bitsandbytes in whl-big), GGUF pieces
#               .venv/bin/python benchmarks/knowledge.py prepare && .venv/bin/python benchmarks/multi_gpu.py prepare
# Then device `run` calls, back to back (the machine stays warm ~30 s between them; /tmp survives):
#   0. carry [.device/on-device.sh, .device/whl-big]   command: bash .device/on-device.sh install-big
#   1. carry [.device/on-device.sh, .device/whl, .bench/throughput, .bench/multi]
#      command: bash benchmarks/device_multi_gpu.sh throughput single,ddp,fsdp
#   2. carry [.bench/throughput]   command: bash benchmarks/device_multi_gpu.sh throughput big-fsdp,big-single
#   3-6. carry [.device/on-device.sh, .device/gguf/pN]   command: bash .device/on-device.sh piece pN   (p0 … p3)
#   7. carry [.device/on-device.sh, .device/gguf/p4, .device/whl, .bench/multi]
#      command: bash benchmarks/device_multi_gpu.sh knowledge
# Back here: .venv/bin/python benchmarks/multi_gpu.py report --results <files_at>/multi_gpu.json --write-results
set -euo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
[ -f /tmp/multi_gpu.json ] && cp /tmp/multi_gpu.json "$OUT/" || true
case "${1:-}" in
  throughput)
    [ -d /tmp/site/transformers ] || bash .device/on-device.sh install >/dev/null
    nvidia-smi --query-gpu=name,memory.total --format=csv
    timeout "${TIMEOUT_S:-570}" python3 benchmarks/multi_gpu.py throughput --variants "$2" \
      --results /tmp/multi_gpu.json --steps "${STEPS:-14}" --warmup "${WARMUP:-4}" 2>&1 | grep -v -i "warn" | tail -60 || true ;;
  knowledge)
    if [ ! -f /tmp/gemma-3-270m-q4_k_m.gguf ]; then
      [ -d /tmp/site/transformers ] || bash .device/on-device.sh install >/dev/null
      bash .device/on-device.sh piece p4 >/dev/null
      bash .device/on-device.sh assemble
    fi
    timeout "${TIMEOUT_S:-570}" python3 benchmarks/multi_gpu.py knowledge --results /tmp/multi_gpu.json \
      --base-model /tmp/gemma-3-270m-q4_k_m.gguf --gpus "${2:-1,2}" 2>&1 | grep -v -i "warn" | tail -60 || true ;;
  *) echo "usage: device_multi_gpu.sh throughput VARIANTS | knowledge [GPUS]" >&2; exit 2 ;;
esac
cp /tmp/multi_gpu.json "$OUT/" 2>/dev/null || true
