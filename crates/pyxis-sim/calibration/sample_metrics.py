#!/usr/bin/env python3
"""Polls a vLLM-compatible /metrics every 100 ms until SIGTERM/SIGINT, then prints one JSON line:
peak vllm:num_requests_running / _waiting / kv_cache_usage_perc, and how much each counter moved.
usage: sample_metrics.py BASE_URL   (stdlib only; works against real vLLM and `pyxis sim serve`)"""
import json, re, signal, sys, time, urllib.request

base = sys.argv[1].rstrip("/")
GAUGES = ["vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"]
COUNTERS = ["vllm:prompt_tokens_total", "vllm:generation_tokens_total", "vllm:prefix_cache_queries_total",
            "vllm:prefix_cache_hits_total", "vllm:num_preemptions_total", "vllm:time_to_first_token_seconds_count",
            "vllm:time_to_first_token_seconds_sum", "vllm:iteration_tokens_total_count", "vllm:iteration_tokens_total_sum"]
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')


def scrape():
    out = {}
    with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            m = LINE.match(line)
            if m and m.group(1) in GAUGES + COUNTERS:
                out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
    return out


stop = False
def on_stop(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_stop)
signal.signal(signal.SIGINT, on_stop)

first = scrape()
peak = {g: first.get(g, 0.0) for g in GAUGES}
series = []
t0 = time.time()
last = first
while not stop:
    time.sleep(0.1)
    try:
        last = scrape()
    except Exception:
        continue
    series.append((round(time.time() - t0, 2), last.get(GAUGES[0], 0), last.get(GAUGES[1], 0), round(last.get(GAUGES[2], 0), 5)))
    for g in GAUGES:
        peak[g] = max(peak[g], last.get(g, 0.0))
delta = {c: last.get(c, 0.0) - first.get(c, 0.0) for c in COUNTERS}
busy = [s for s in series if s[1] > 0]
print(json.dumps({
    "peak": peak,
    "mean_running_while_busy": round(sum(s[1] for s in busy) / len(busy), 2) if busy else 0,
    "mean_waiting_while_busy": round(sum(s[2] for s in busy) / len(busy), 2) if busy else 0,
    "delta": delta,
    "engine_mean_ttft_ms": round(1000 * delta["vllm:time_to_first_token_seconds_sum"] / delta["vllm:time_to_first_token_seconds_count"], 1)
    if delta["vllm:time_to_first_token_seconds_count"] else None,
    "mean_tokens_per_step": round(delta["vllm:iteration_tokens_total_sum"] / delta["vllm:iteration_tokens_total_count"], 2)
    if delta["vllm:iteration_tokens_total_count"] else None,
}))
