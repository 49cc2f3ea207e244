#!/usr/bin/env python3
"""Compares compare.sh outputs: median over rounds, per concurrency, real vs simulated.
usage: summarize.py REAL.jsonl SIM.jsonl"""
import json, statistics, sys

def load(path):
    rows = {}
    for line in open(path):
        d = json.loads(line)
        rows.setdefault(d["concurrency"], []).append(d)
    return rows

real, sim = load(sys.argv[1]), load(sys.argv[2])
fields = [
    ("TTFT p50 at client, ms", lambda d: d["load"]["ttft_ms_median"]),
    ("aggregate output tok/s", lambda d: d["load"]["agg_tokens_per_s"]),
    ("per-request tok/s (median)", lambda d: d["load"]["per_req_tokens_per_s_median"]),
    ("engine TTFT mean (vllm:), ms", lambda d: d["metrics"]["engine_mean_ttft_ms"]),
    ("num_requests_running, mean while busy", lambda d: d["metrics"]["mean_running_while_busy"]),
    ("num_requests_waiting, peak", lambda d: d["metrics"]["peak"]["vllm:num_requests_waiting"]),
    ("kv_cache_usage_perc, peak", lambda d: d["metrics"]["peak"]["vllm:kv_cache_usage_perc"]),
    ("tokens per engine step", lambda d: d["metrics"]["mean_tokens_per_step"]),
    ("generation_tokens_total, delta", lambda d: d["metrics"]["delta"]["vllm:generation_tokens_total"]),
    ("prompt_tokens_total, delta", lambda d: d["metrics"]["delta"]["vllm:prompt_tokens_total"]),
]
print("| concurrency | figure | real (median; runs) | simulator (median; runs) | difference |")
print("|---|---|---|---|---|")
for c in sorted(real):
    for name, f in fields:
        r = [f(d) for d in real[c]]
        s = [f(d) for d in sim.get(c, [])]
        mr, ms = statistics.median(r), statistics.median(s)
        diff = f"{100 * (ms - mr) / mr:+.1f} %" if mr else "–"
        fmt = lambda v: f"{v:.4g}"
        print(f"| {c} | {name} | {fmt(mr)} ({', '.join(map(fmt, r))}) | {fmt(ms)} ({', '.join(map(fmt, s))}) | {diff} |")
