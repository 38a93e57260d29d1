#!/usr/bin/python3
"""Benchmark of sparsetf-dist --serve (a program, not a test): throughput and
time-to-first-token for C concurrent streaming clients, and the server's overhead per token
at one client against the engine's own decode time.

  tests/bench/server_bench.py build/src/tools/sparsetf-dist src/train/models/default-sparse.stf \\
      [--clients 1,8,32] [--rounds 3] [--tokens 64] [--slots 32] [-- extra server options]

Per configuration it prints one JSON line, then a table. Server overhead per token, two ways:
CPU time per token from the server's own summary at shutdown (the engine's CPU on rank 0's
thread, the serving work on that thread, and all CPU of the HTTP threads), which the host's
other load does not distort; and, at one client, a whole request over HTTP (send to
`data: [DONE]`) against a `--prompt` run of the same request, interleaved, per token.
"""
import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import server_clients as sc  # noqa: E402

PROMPTS = ["It is a truth universally acknowledged, that", "The President said that",
           "Mr. Darcy", "We the people", "Elizabeth could not", "The Congress shall",
           "My dear Mr. Bennet,", "The state of the Union is"]


def one_stream(port, body, out, i):
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    c.request("POST", "/v1/completions", body=json.dumps(body),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    times, n_tok = [], 0
    while True:
        line = r.readline()
        if not line:
            break
        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
            continue
        ev = json.loads(line[6:])
        k = len(ev["choices"][0].get("token_ids") or []) if ev["choices"] else 0
        if k:
            times.append((time.perf_counter(), k))
            n_tok += k
    c.close()
    out[i] = {"t0": t0, "t_end": time.perf_counter(), "times": times, "tokens": n_tok}


def round_(port, n_clients, tokens, seed0):
    out = [None] * n_clients
    threads = []
    for i in range(n_clients):
        body = {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": tokens, "seed": seed0 + i,
                "stream": True, "return_token_ids": True, "temperature": 0.8}
        threads.append(threading.Thread(target=one_stream, args=(port, body, out, i)))
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ttft = [o["times"][0][0] - o["t0"] for o in out if o["times"]]
    gaps = []
    for o in out:
        for (a, _), (b, k) in zip(o["times"], o["times"][1:]):
            gaps.append((b - a) / k)
    per_token = [(o["t_end"] - o["t0"]) / o["tokens"] for o in out if o["tokens"]]
    return {"wall": wall, "tokens": sum(o["tokens"] for o in out), "ttft": ttft, "gaps": gaps,
            "request_ms_per_token": 1e3 * statistics.median(per_token)}


def cli_decode_ms(dist, model, tokens, seed, workdir):
    """Median decode latency of a --prompt run of the same request (in-process, no HTTP)."""
    stats = os.path.join(workdir, "cli_stats.json")
    subprocess.run([dist, "--model", model, "--ctx", str(sc.CTX), "--prompt", PROMPTS[0],
                    "--max-tokens", str(tokens), "--seed", str(seed), "--temperature", "0.8",
                    "--quiet", "--stats-json", stats], check=True, capture_output=True)
    with open(stats) as f:
        j = json.load(f)
    return j["latency_ms"]["median"], 1e3 * j["wall_s"] / max(1, j["generated_tokens"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dist")
    ap.add_argument("model")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--slots", type=int, default=32)
    ap.add_argument("--workdir", default="/tmp/sparsetf-server-bench")
    ap.add_argument("extra", nargs="*")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    rows = []
    for n in [int(x) for x in a.clients.split(",")]:
        srv = sc.Server(a.dist, a.model, ["--slots", str(a.slots), "--max-queue", "64"] +
                       a.extra)
        round_(srv.port, min(n, 4), 8, 1)  # warm-up, not counted
        res, cli = [], []
        for r in range(a.rounds):
            res.append(round_(srv.port, n, a.tokens, 1000 * r))
            if n == 1:
                cli.append(cli_decode_ms(a.dist, a.model, a.tokens, 1000 * r, a.workdir))
        srv.stop(signal.SIGTERM)
        log = "".join(srv.log)
        m = re.search(r"decode latency median ([\d.]+) ms", log)
        engine_ms = float(m.group(1)) if m else None
        m = re.search(r"CPU per token: engine ([\d.]+) us, serving ([\d.]+) us on rank 0's "
                      r"thread \+ ([\d.]+) us in the HTTP threads", log)
        cpu = [float(m.group(k)) for k in (1, 2, 3)] if m else [None] * 3
        tps = [x["tokens"] / x["wall"] for x in res]
        ttft = sorted(t for x in res for t in x["ttft"])
        gaps = sorted(g for x in res for g in x["gaps"])
        row = {"clients": n, "rounds": a.rounds, "tokens_per_request": a.tokens,
               "tok_per_s_median": statistics.median(tps), "tok_per_s_min": min(tps),
               "tok_per_s_max": max(tps),
               "ttft_ms_median": 1e3 * statistics.median(ttft),
               "ttft_ms_p90": 1e3 * ttft[int(0.9 * (len(ttft) - 1))],
               "client_gap_ms_median": 1e3 * statistics.median(gaps),
               "engine_decode_ms_median": engine_ms,
               "cpu_us_per_token_engine": cpu[0], "cpu_us_per_token_rank0_serving": cpu[1],
               "cpu_us_per_token_http_threads": cpu[2]}
        if n == 1:
            c = statistics.median(x[0] for x in cli)
            row["cli_decode_ms_median"] = c
            # the same request end to end, both under the host's load at the same time:
            # HTTP request send to [DONE], vs the --prompt run's wall time, per token
            row["server_request_ms_per_token"] = statistics.median(
                x["request_ms_per_token"] for x in res)
            row["cli_wall_ms_per_token"] = statistics.median(x[1] for x in cli)
            row["overhead_vs_engine"] = row["client_gap_ms_median"] / engine_ms - 1
            row["overhead_vs_cli"] = row["client_gap_ms_median"] / c - 1
        print(json.dumps(row), flush=True)
        rows.append(row)
    print("\n clients  tok/s (median, min-max)   TTFT ms (median, p90)   gap/token ms   engine ms")
    for r in rows:
        print(" %7d  %8.1f (%6.1f-%6.1f)   %8.1f  %8.1f          %8.3f      %8.3f" % (
            r["clients"], r["tok_per_s_median"], r["tok_per_s_min"], r["tok_per_s_max"],
            r["ttft_ms_median"], r["ttft_ms_p90"], r["client_gap_ms_median"],
            r["engine_decode_ms_median"] or 0))
    print("\n CPU per token (the whole run): engine | serving on rank 0's thread | HTTP threads")
    for r in rows:
        e, r0, h = (r["cpu_us_per_token_engine"], r["cpu_us_per_token_rank0_serving"],
                    r["cpu_us_per_token_http_threads"])
        if e:
            print(" %7d clients: %8.1f us | %6.1f us = %5.2f %% | %6.1f us = %5.2f %%  (total "
                  "%.2f %%)" % (r["clients"], e, r0, 100 * r0 / e, h, 100 * h / e,
                               100 * (r0 + h) / e))
    for r in rows:
        if "overhead_vs_engine" in r:
            print(" one client, a whole request per token: %.3f ms over HTTP vs %.3f ms for the "
                  "--prompt run (interleaved): %+.1f %%" % (
                      r["server_request_ms_per_token"], r["cli_wall_ms_per_token"],
                      100 * (r["server_request_ms_per_token"] / r["cli_wall_ms_per_token"] - 1)))


if __name__ == "__main__":
    main()
