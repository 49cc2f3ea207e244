#!/usr/bin/env bash
# Drives one OpenAI-compatible server (real vLLM or `pyxis sim serve`) at several concurrencies with
# shared/runtimes/bench_chat.py while sampling its /metrics; prints one JSON line per concurrency.
#   compare.sh BASE_URL MODEL [CONCURRENCIES] [MAX_TOKENS] [REQUESTS_PER_CLIENT]
# e.g. compare.sh http://127.0.0.1:8100 tiny "1 4 16" 128 6
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bench=${BENCH_CHAT:-$here/../../../../shared/runtimes/bench_chat.py}
url=$1; model=$2; concs=${3:-"1 4 16"}; max_tokens=${4:-128}; per=${5:-6}
# Warm-up (first requests pay one-off costs on the real engine).
python3 "$bench" "$url" "$model" 4 2 16 >/dev/null
for c in $concs; do
  python3 "$here/sample_metrics.py" "$url" > "/tmp/pyxis-calib-metrics-$c.json" &
  sampler=$!
  sleep 0.3
  load=$(python3 "$bench" "$url" "$model" $((c * per)) "$c" "$max_tokens")
  sleep 0.3
  kill -TERM "$sampler"; wait "$sampler" || true
  printf '{"concurrency": %s, "load": %s, "metrics": %s}\n' "$c" "$load" "$(cat "/tmp/pyxis-calib-metrics-$c.json")"
done
