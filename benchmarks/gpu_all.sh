#!/usr/bin/env bash
# Every full-size benchmark on one CUDA GPU, in one go (random weights built from the real configs).
#
#   bash benchmarks/gpu_all.sh [OUT_DIR]        # default OUT_DIR: bench-gpu
#
# Writes one JSON report and one log per benchmark into OUT_DIR, and the card's name beside
# them; docs/performance.md quotes these files. Each step has its own time limit so that one
# that hangs cannot take the others with it. SKIP="think train" leaves steps out; ONLY="..."
# runs just those. The whole script needs ~45 minutes of GPU time; issue 15's comparison (today's
# path vs the new one, and the test-set projection) fits in ~17 minutes:
#
#   ONLY="video_sharing think_decode" bash benchmarks/gpu_all.sh bench-gpu
#   python benchmarks/project_testset.py bench-gpu
set -u -o pipefail
out=${1:-bench-gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
py=${PYTHON:-python3}
skip=" ${SKIP:-} "
only=" ${ONLY:-} "

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
"$py" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
    | tee -a "$out/gpu.txt"

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    case $skip in *" $name "*) echo "== $name skipped"; return ;; esac
    if [ "$only" != "  " ]; then case $only in *" $name "*) ;; *) echo "== $name not in ONLY"; return ;; esac; fi
    echo "== $name (limit ${limit}s)"
    local start=$SECONDS
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - start)) s"
    tail -n 25 "$out/$name.log"
}

step ground_segment 300 "$py" benchmarks/ground_segment_bench.py --device cuda --threads 8 \
    --frames 10 --warmup 2 --modes naive,fp32,bf16,fp32-gather,bf16-gather --memory-frames 0 \
    --video-lengths 10,30,100 --video-sam2 large --presets paper,best --preset-dtypes bf16,fp32 \
    --models-dir /tmp/tgs-bench-models --out "$out/ground_segment.json"
# Ground + Segment of one video with 8 expressions (paper preset, bf16, 1280x720, full size):
# today's path (one expression at a time, host preprocessing, eager, frame by frame) vs the new
# one (frame work shared across expressions, preprocessing on the GPU, torch.compile, 10 frames
# and every expression per forward); frames/s = frames x expressions / wall second.
step video_sharing 420 "$py" benchmarks/video_sharing_bench.py --device cuda --frames 10 --expressions 8 \
    --dtypes bf16 --curve-dtypes bf16 --curve 1,2,4,16 --device-preprocess --compile --frame-batch-size 10 \
    --models-dir /tmp/tgs-bench-models --out "$out/video_sharing.json"
step video_sharing_eager 300 "$py" benchmarks/video_sharing_bench.py --device cuda --frames 10 --expressions 8 \
    --dtypes bf16 --curve "" --device-preprocess --frame-batch-size 10 \
    --models-dir /tmp/tgs-bench-models --out "$out/video_sharing_eager.json"
# SAM 3 (video and image model) beside Grounding DINO-T + SAM2.1-L and + EdgeTAM, 1 and 8 expressions.
step sam3 420 "$py" benchmarks/sam3_bench.py --device cuda --dtype bf16 --threads 8 --frames 10 --sam3-frames 10 \
    --expressions 1,8 --models-dir /tmp/tgs-bench-models/sam3 --out "$out/sam3.json"
step propagation 300 "$py" benchmarks/propagation_bench.py speed --device cuda --threads 8 --frames 20 \
    --out "$out/propagation.json"
step propagation_memory 300 "$py" benchmarks/propagation_bench.py memory --device cuda --threads 8 \
    --lengths 600,3600,18000 --every 1800 --out "$out/propagation_memory.json"
# Live: latency p50 / p95 and skipped ratio on an ffmpeg -re 1280x720 25 fps stream, EdgeTAM, 1 and 3
# expressions (target: every frame with 3 expressions, p95 under 200 ms).
step live 240 "$py" benchmarks/live_bench.py latency --device cuda --dtype bf16 --threads 8 --seconds 30 \
    --counts 1,3 --out "$out/live.json"
step think 180 "$py" benchmarks/think_bench.py --preset full --device cuda --new-tokens 64 \
    --out "$out/think.json"
# Decode: dynamic vs static KV cache vs static + compiled step (CUDA graphs), merged LoRA, bf16,
# batch 1/8/32: decode ms/step, samples/s at 64 and (projected) 256 tokens, same answers as dynamic.
step think_decode 600 "$py" benchmarks/think_bench.py --preset full --device cuda --dtypes bf16 \
    --batch-sizes 1 8 32 --decode-modes dynamic static --compile --new-tokens 64 --merge-lora \
    --out "$out/think_decode.json"
# One video, 1-16 expressions: encoders + prefill per expression plain vs shared; 8 whole answers.
step think_sharing 300 "$py" benchmarks/think_bench.py --preset full --device cuda --dtypes bf16 fp32 \
    --video-sharing --expression-counts 1 2 4 8 16 --answer-expressions 8 --merge-lora \
    --out "$out/think_sharing.json"
step train 150 "$py" benchmarks/train_step_bench.py --device cuda --batch 4 --dtype bf16 \
    --out "$out/train.json"
