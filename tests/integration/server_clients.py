#!/usr/bin/python3
"""sparsetf-dist --serve driven by real clients on a free local port.

Every answer is checked against `sparsetf-dist --prompt ...` runs of the same request and
seed (token ids with --print-tokens, and the text): non-streaming and streaming, with curl
and Python's http.client; 32 concurrent streaming requests against a --prompts run of the
same 32 prompts (each session samples with seed + its index, as it would alone); a client
that leaves cancels its session; 429 beyond --slots + --max-queue; --api-key; and a battery
of malformed requests after which the server still answers.

usage: server_clients.py DIST MODEL WORKDIR [--mpi LAUNCHER...] [--part all|mpi|fault]
"""
import argparse
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

CTX = 256
SERVERS = []  # their stderr is shown when a check fails


class Server:
    """A sparsetf-dist --serve process on 127.0.0.1:<free port>."""

    def __init__(self, dist, model, extra=(), launcher=()):
        cmd = list(launcher) + [dist, "--model", model, "--serve", "127.0.0.1:0",
                                "--ctx", str(CTX)] + list(extra)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        self.log = []
        self.port = None
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r"serving \S+ on http://127\.0\.0\.1:(\d+)/v1", line)
            if m:
                self.port = int(m.group(1))
                break
        if not self.port:
            self.proc.kill()
            sys.exit("server did not start: " + "".join(self.log) + self.proc.stderr.read())
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        SERVERS.append(self)

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            sys.exit("server did not stop within %d s after signal %d" % (timeout, sig))
        self.reader.join(5)
        return rc

    def request(self, method, path, body=None, headers=None, timeout=60):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        c.request(method, path, body=json.dumps(body) if isinstance(body, dict) else body,
                  headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    def complete(self, body, path="/v1/completions", headers=None):
        status, data = self.request("POST", path, body, headers)
        return status, json.loads(data)

    def stream(self, body, path="/v1/completions", headers=None, timeout=120):
        """Returns (status, text, ids, finish, usage, events) of a streaming request."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        c.request("POST", path, body=json.dumps(body), headers=h)
        r = c.getresponse()
        if r.status != 200:
            data = r.read()
            c.close()
            return r.status, json.loads(data), None, None, None, None
        assert r.getheader("Content-Type") == "text/event-stream", r.getheader("Content-Type")
        text, ids, finish, usage, events = "", [], None, None, 0
        done = False
        while True:
            line = r.readline().decode()
            if not line:
                break
            line = line.rstrip("\n")
            if not line:
                continue
            assert line.startswith("data: "), line
            payload = line[6:]
            if payload == "[DONE]":
                done = True
                continue
            assert not done, "event after [DONE]"
            ev = json.loads(payload)
            events += 1
            if "error" in ev:
                c.close()
                return 0, ev, None, None, None, events
            if ev.get("usage"):
                usage = ev["usage"]
            for ch in ev["choices"]:
                text += ch.get("text") or (ch.get("delta") or {}).get("content") or ""
                ids += ch.get("token_ids") or []
                finish = ch.get("finish_reason") or finish
        c.close()
        assert done, "no data: [DONE]"
        return 200, text, ids, finish, usage, events


def decoded_prompt(model, prompt):
    """The prompt as the model's tokenizer gives it back (it may normalise, e.g. newlines to
    spaces): the CLI prints decode(prompt + continuation)."""
    import sentencepiece
    sp = sentencepiece.SentencePieceProcessor(
        model_file=os.path.join(os.path.dirname(model), "spm8k.model"))
    return sp.decode(sp.encode(prompt))


def reference(dist, model, prompts, max_tokens, temperature, top_k, top_p, seed, workdir=None,
              name=None):
    """Solo `--prompt` runs, prompt i with seed + i: (token ids, continuation text) each."""
    refs = []
    for i, p in enumerate(prompts):
        cmd = [dist, "--model", model, "--ctx", str(CTX), "--max-tokens", str(max_tokens),
               "--temperature", str(temperature), "--top-k", str(top_k), "--top-p", str(top_p),
               "--seed", str(seed + i), "--print-tokens", "--quiet", "--prompt", p]
        lines = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split("\n")
        ids = [int(t) for t in lines[0].split()]
        full, pre = lines[1], decoded_prompt(model, p)
        assert full.startswith(pre), (full, pre)
        refs.append((ids, full[len(pre):]))
    return refs


def chat_cut(text):
    """The chat template's stop strings end the answer."""
    for s in ("\nUser:", " User:"):
        if s in text:
            text = text[:text.index(s)]
    return text


def check(cond, what):
    if not cond:
        for srv in SERVERS:
            sys.stderr.write("--- server stderr:\n" + "".join(srv.log))
        sys.exit("FAIL: " + what)
    print("ok  " + what.split("\n")[0][:150])


def body_for(prompt, max_tokens, temperature, top_k, top_p, seed, **kw):
    b = {"model": "default-sparse", "prompt": prompt, "max_tokens": max_tokens,
         "temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed,
         "return_token_ids": True}
    b.update(kw)
    return b


PROMPTS = ["It is a truth universally acknowledged, that", "The President said that",
           "Mr. Darcy", "We the people", "Elizabeth could not", "The Congress shall",
           "My dear Mr. Bennet,", "The state of the Union is", "She was", "In the year"]


def part_clients(a, workdir):
    dist, model = a.dist, a.model
    for bad, what in [("127.0.0.1:99999", "--serve"), ("[::1", "--serve"),
                      ("example:0", "`example` (an IPv4 or IPv6 address")]:
        r = subprocess.run([dist, "--model", model, "--serve", bad], capture_output=True,
                           text=True, timeout=30)
        check(r.returncode != 0 and what in r.stderr,
              "--serve %s: refused (%s)" % (bad, r.stderr.strip()[:100]))
    srv = Server(dist, model, ["--slots", "16", "--max-queue", "64", "--client-timeout", "2"],
                 a.launcher)
    try:
        status, data = srv.request("GET", "/health")
        check(status == 200 and json.loads(data)["status"] == "ok", "GET /health")
        r = subprocess.run([dist, "--model", model, "--serve", "127.0.0.1:%d" % srv.port],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode != 0 and "cannot listen" in r.stderr,
              "a second server on the same port: refused (%s)" % r.stderr.strip()[:100])
        status, data = srv.request("GET", "/v1/models")
        check(status == 200 and json.loads(data)["data"][0]["id"] == "default-sparse",
              "GET /v1/models names the model")

        # one request, three clients: http.client (plain and streaming), curl (both)
        p, n, t, k, tp, seed = PROMPTS[0], 40, 0.8, 40, 0.95, 7
        (ref_ids, ref_text), = reference(dist, model, [p], n, t, k, tp, seed, workdir, "one")
        status, ans = srv.complete(body_for(p, n, t, k, tp, seed))
        ch = ans["choices"][0]
        check(status == 200 and ch["token_ids"] == ref_ids and ch["text"] == ref_text,
              "non-streaming answer equals the --prompt run (%d tokens)" % len(ref_ids))
        check(ans["usage"]["completion_tokens"] == len(ref_ids) and
              ans["usage"]["total_tokens"] == ans["usage"]["prompt_tokens"] + len(ref_ids) and
              ans["object"] == "text_completion" and ch["finish_reason"] in ("length", "stop"),
              "usage counts and object fields")
        st, text, ids, finish, usage, events = srv.stream(
            body_for(p, n, t, k, tp, seed, stream=True, stream_options={"include_usage": True}))
        check(st == 200 and ids == ref_ids and text == ref_text,
              "streaming answer equals the --prompt run (%d events)" % events)
        check(usage and usage["completion_tokens"] == len(ref_ids) and events >= 2,
              "streaming: %d events for %d tokens (a slow reader gets several tokens per "
              "event), usage chunk at the end" % (events, len(ref_ids)))
        url = "http://127.0.0.1:%d/v1/completions" % srv.port
        out = subprocess.run(["curl", "-sS", "--max-time", "60", url, "-H",
                              "Content-Type: application/json", "-d",
                              json.dumps(body_for(p, n, t, k, tp, seed))],
                             capture_output=True, text=True, check=True).stdout
        ch = json.loads(out)["choices"][0]
        check(ch["token_ids"] == ref_ids and ch["text"] == ref_text, "curl: same answer")
        out = subprocess.run(["curl", "-sSN", "--max-time", "60", url, "-H",
                              "Content-Type: application/json", "-d",
                              json.dumps(body_for(p, n, t, k, tp, seed, stream=True))],
                             capture_output=True, text=True, check=True).stdout
        evs = [l[6:] for l in out.split("\n") if l.startswith("data: ")]
        ctext = "".join(json.loads(e)["choices"][0]["text"] for e in evs[:-1])
        cids = sum((json.loads(e)["choices"][0].get("token_ids", []) for e in evs[:-1]), [])
        check(evs[-1] == "[DONE]" and ctext == ref_text and cids == ref_ids,
              "curl -N: streamed the same answer, ending with data: [DONE]")

        # greedy, token-id prompt
        ids_prompt = [1, 15, 300, 42, 7]
        out = subprocess.run([dist, "--model", model, "--ctx", str(CTX), "--prompt-tokens",
                              " ".join(map(str, ids_prompt)), "--max-tokens", "20",
                              "--temperature", "0", "--quiet"],
                             capture_output=True, text=True, check=True).stdout
        status, ans = srv.complete({"prompt": ids_prompt, "max_tokens": 20, "temperature": 0,
                                    "return_token_ids": True})
        check(ans["choices"][0]["token_ids"] == [int(x) for x in out.split()],
              "token-id prompt, greedy: equals --prompt-tokens")

        # stop strings: the text ends before the first stop string, finish_reason "stop"
        cut = ref_text[len(ref_text) // 2:len(ref_text) // 2 + 3]
        if cut.strip():
            status, ans = srv.complete(body_for(p, n, t, k, tp, seed, stop=[cut]))
            ch = ans["choices"][0]
            check(ch["text"] == ref_text[:ref_text.index(cut)] and ch["finish_reason"] == "stop"
                  and ref_ids[:len(ch["token_ids"])] == ch["token_ids"],
                  "stop string %r: text cut before it, finish_reason stop" % cut)
            st, text, ids, finish, usage, _ = srv.stream(
                body_for(p, n, t, k, tp, seed, stop=[cut], stream=True))
            check(text == ref_text[:ref_text.index(cut)] and finish == "stop",
                  "stop string while streaming: nothing of it is sent")

        # chat: the documented template as a text prompt
        chat_prompt = "User: Tell me about the war.\nAssistant:"
        (cids, ctext), = reference(dist, model, [chat_prompt], 24, t, k, tp, 3, workdir, "chat")
        status, ans = srv.complete({"messages": [{"role": "user",
                                                  "content": "Tell me about the war."}],
                                    "max_tokens": 24, "temperature": t, "top_k": k, "top_p": tp,
                                    "seed": 3, "return_token_ids": True},
                                   path="/v1/chat/completions")
        ch = ans["choices"][0]
        want = chat_cut(ctext)
        check(status == 200 and ans["object"] == "chat.completion" and
              ch["message"]["content"] == want and cids[:len(ch["token_ids"])] == ch["token_ids"],
              "chat completion equals --prompt of the template (%r)" % want[:40])
        st, text, ids, finish, usage, _ = srv.stream(
            {"messages": [{"role": "user", "content": "Tell me about the war."}],
             "max_tokens": 24, "temperature": t, "top_k": k, "top_p": tp, "seed": 3,
             "stream": True}, path="/v1/chat/completions")
        check(st == 200 and text == want, "streaming chat: same text")

        # 32 concurrent streaming requests, each equal to its session of a --prompts run
        prompts = [PROMPTS[i % len(PROMPTS)] + ("" if i < len(PROMPTS) else " %d" % i)
                   for i in range(32)]
        base = 100
        refs = reference(dist, model, prompts, 24, t, k, tp, base)
        results = [None] * 32

        def one(i):
            results[i] = srv.stream(body_for(prompts[i], 24, t, k, tp, base + i, stream=True))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(32)]
        t0 = time.time()
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        wall = time.time() - t0
        bad = [i for i in range(32) if not results[i] or results[i][0] != 200 or
               results[i][2] != refs[i][0] or results[i][1] != refs[i][1]]
        check(not bad, "32 concurrent streams, every one equal to its solo run (%.2f s); bad: %s"
              % (wall, bad))

        # a client that leaves cancels its session
        s = socket.create_connection(("127.0.0.1", srv.port))
        body = json.dumps(body_for(PROMPTS[1], 200, t, k, tp, 5, stream=True)).encode()
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                  b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        got = s.recv(4096)
        check(got.startswith(b"HTTP/1.1 200"), "a long stream starts")
        s.close()
        deadline, running = time.time() + 5, None
        while time.time() < deadline:
            m = re.search(r"sparsetf_requests_running (\d+)", srv.request("GET", "/metrics")[1]
                          .decode())
            running = int(m.group(1))
            if running == 0:
                break
            time.sleep(0.05)
        check(running == 0, "the client left: its session was cancelled")
        status, ans = srv.complete(body_for(p, n, t, k, tp, seed))
        check(ans["choices"][0]["token_ids"] == ref_ids, "and the next answer is still exact")

        malformed_battery(srv)
        status, ans = srv.complete(body_for(p, n, t, k, tp, seed))
        check(ans["choices"][0]["token_ids"] == ref_ids, "after the battery, answers are exact")
        metrics = srv.request("GET", "/metrics")[1].decode()
        for name in ("sparsetf_requests_total", "sparsetf_completion_tokens_total",
                     "sparsetf_token_latency_seconds_bucket", "sparsetf_queue_depth",
                     "sparsetf_time_to_first_token_seconds_count"):
            check(name in metrics, "/metrics has " + name)
        m = re.search(r'sparsetf_rank_compute_seconds\{rank="0"\} ([\d.]+)', metrics)
        check(m and float(m.group(1)) > 0, "/metrics: rank 0's compute seconds (%s)" %
              (m.group(1) if m else None))
        m = re.search(r"sparsetf_completion_tokens_total (\d+)", metrics)
        check(m and int(m.group(1)) >= 32 * 24, "/metrics counted the tokens (%s)" %
              (m.group(1) if m else None))
    finally:
        rc = srv.stop()
    check(rc == 0, "SIGTERM: the server stopped cleanly (exit %s)" % rc)

    # 429 and --api-key on a server with 1 slot and a queue of 1 (ref kernels: slower)
    srv = Server(dist, model, ["--slots", "1", "--max-queue", "1", "--api-key", "k3y",
                               "--kernels", "ref"], a.launcher)
    try:
        auth = {"Authorization": "Bearer k3y"}
        status, ans = srv.complete({"prompt": "Hi", "max_tokens": 2})
        check(status == 401 and ans["error"]["type"] == "authentication_error", "no key: 401")
        status, ans = srv.complete({"prompt": "Hi", "max_tokens": 2},
                                   headers={"Authorization": "Bearer nope"})
        check(status == 401, "wrong key: 401")
        socks = []
        body = json.dumps({"prompt": "It is", "max_tokens": CTX - 10, "stream": True}).encode()
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k3y"
                      b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            check(s.recv(4096).startswith(b"HTTP/1.1 200"), "a long stream holds the slot/queue")
            socks.append(s)
        status, ans = srv.complete({"prompt": "Hi", "max_tokens": 2}, headers=auth)
        check(status == 429 and ans["error"]["type"] == "rate_limit_error",
              "beyond --slots 1 + --max-queue 1: 429")
        for s in socks:
            s.close()
        deadline = time.time() + 10
        while time.time() < deadline:
            status, ans = srv.complete({"prompt": "Hi", "max_tokens": 2}, headers=auth)
            if status == 200:
                break
            time.sleep(0.05)
        check(status == 200, "once they leave, requests are served again")
    finally:
        srv.stop()


def raw(port, data, read=True, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early (413) and closed: read what it said
        if not read:
            return b""
        out = b""
        while True:
            try:
                got = s.recv(65536)
            except socket.timeout:
                return out + b"<timeout>"
            except ConnectionResetError:
                return out
            if not got:
                return out
            out += got
    finally:
        s.close()


def malformed_battery(srv):
    port = srv.port

    def post(body, path="/v1/completions", extra=b""):
        if isinstance(body, str):
            body = body.encode()
        return raw(port, b"POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s"
                   b"Content-Length: %d\r\n\r\n" % (path.encode(), extra, len(body)) + body)

    def status(ans):
        m = re.match(rb"HTTP/1\.[01] (\d+)", ans)
        return int(m.group(1)) if m else None

    def error_param(ans):
        return json.loads(ans.split(b"\r\n\r\n", 1)[1])["error"]["param"]

    cases = [
        ("bad JSON", '{"prompt": "a",', None),
        ("not an object", '["a"]', None),
        ("prompt a number", '{"prompt": 5}', "prompt"),
        ("max_tokens a string", '{"prompt": "a", "max_tokens": "5"}', "max_tokens"),
        ("temperature too high", '{"prompt": "a", "temperature": 9}', "temperature"),
        ("top_p zero", '{"prompt": "a", "top_p": 0}', "top_p"),
        ("top_k negative", '{"prompt": "a", "top_k": -5}', "top_k"),
        ("seed a float", '{"prompt": "a", "seed": 1.5}', "seed"),
        ("stream a string", '{"prompt": "a", "stream": "yes"}', "stream"),
        ("n = 2", '{"prompt": "a", "n": 2}', "n"),
        ("token id out of range", '{"prompt": [1, 99999999]}', "prompt"),
        ("prompt over the context", json.dumps({"prompt": list(range(1, CTX + 2))}), "prompt"),
        ("max_tokens over the context", '{"prompt": "a", "max_tokens": %d}' % CTX, "max_tokens"),
        ("text prompt over the context", json.dumps({"prompt": "war peace " * 400}), "prompt"),
        ("messages missing", '{"prompt": "a"}', "messages"),
        ("bad role", '{"messages": [{"role": "x", "content": "a"}]}', "messages[0].role"),
        ("invalid UTF-8", b'{"prompt": "\xff\xfe"}', None),
        ("NUL in prompt", '{"prompt": "a\\u0000b"}', None),
        ("deep nesting", '{"prompt": ' + "[" * 5000 + "]" * 5000 + "}", None),
        ("huge number", '{"prompt": "a", "max_tokens": 1e400}', None),
        ("duplicate key", '{"prompt": "a", "prompt": "b"}', None),
        ("empty body", "", None),
    ]
    for what, body, param in cases:
        path = "/v1/chat/completions" if "messages" in what or "role" in what else \
            "/v1/completions"
        ans = post(body, path)
        ok = status(ans) == 400 and (param is None or error_param(ans) == param)
        check(ok, "malformed: %s -> 400%s (%s)" % (what, " naming " + param if param else "",
                                                    ans[:60]))
    ans = post("x" * (2 << 20))
    check(status(ans) == 413, "a 2 MB body -> 413")
    ans = raw(port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n" + (b"10000\r\n" + b" " * 0x10000 + b"\r\n") * 24
              + b"0\r\n\r\n")
    check(status(ans) == 413 or ans == b"", "a chunked 1.5 MB body -> 413 or dropped")
    for what, data, want in [
        ("unknown path", b"GET /v2/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
        ("wrong method", b"DELETE /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
         405),
        ("GET on a POST path", b"GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
         b"Connection: close\r\n\r\n", 405),
        ("garbage request line", b"\x00\x01\x02 nonsense\r\n\r\n", 400),
        ("no Host (HTTP/1.1)", b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n", "any"),
        ("huge header", b"GET /health HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 100000 + b"\r\n\r\n",
         None),
        ("bad Content-Length", b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close"
         b"\r\nContent-Length: banana\r\n\r\n{}", None),
    ]:
        ans = raw(port, data)
        st = status(ans)
        check(st == want or (want in (400, None) and (st is None or 400 <= st < 500)) or
              (want == "any" and st is not None),
              "malformed HTTP: %s -> %s" % (what, st))
    # truncated requests: headers cut, body cut (the client then leaves, or waits)
    raw(port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Le", read=False)
    raw(port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pr",
        read=False)
    t0 = time.time()
    ans = raw(port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
              timeout=15)
    check(not ans.startswith(b"HTTP/1.1 2") and time.time() - t0 < 10,
          "a client that stops sending is dropped after --client-timeout (%.1f s)"
          % (time.time() - t0))
    status_, data = srv.request("GET", "/health")
    check(status_ == 200, "the server is healthy after the battery")


def part_mpi(a, workdir):
    """Under mpirun: answers equal the single-process --prompt runs (layout-independent)."""
    dist, model = a.dist, a.model
    srv = Server(dist, model, ["--slots", "4", "--max-queue", "16"], a.launcher)
    try:
        t, k, tp = 0.8, 40, 0.95
        prompts = PROMPTS[:8]
        refs = reference(dist, model, prompts, 20, t, k, tp, 50, workdir, "mpi8")
        results = [None] * 8

        def one(i):
            results[i] = srv.stream(body_for(prompts[i], 20, t, k, tp, 50 + i, stream=True))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        bad = [i for i in range(8) if not results[i] or results[i][2] != refs[i][0] or
               results[i][1] != refs[i][1]]
        check(not bad, "under mpirun: 8 concurrent streams (4 slots) equal the single-process "
              "runs; bad %s" % bad)
        status, ans = srv.complete(body_for(prompts[0], 20, t, k, tp, 50))
        check(ans["choices"][0]["token_ids"] == refs[0][0], "non-streaming too")
    finally:
        srv.stop()
    # mpirun exits non-zero when it was signalled itself; what matters is that rank 0 shut
    # the stages down and gathered their stats
    ranks = int(re.search(r"\((\d+) ranks?,", "".join(srv.log)).group(1))
    check(ranks > 1 and any("stopped serving" in l for l in srv.log) and
          any(re.match(r"\s+rank %d " % (ranks - 1), l) for l in srv.log),
          "SIGTERM: rank 0 answered what was open and shut the %d stages down" % (ranks - 1))


def part_fault(a, workdir):
    """A stage stops answering: in-flight requests get 503, the job ends with an error."""
    srv = Server(a.dist, a.model, ["--timeout", "2", "--fault-inject", "stall-rank=1,after=5"],
                 a.launcher)
    try:
        results = [None, None]

        def one(i, stream):
            if stream:
                results[i] = srv.stream({"prompt": "We the people", "max_tokens": 40,
                                         "stream": True})
            else:
                results[i] = srv.complete({"prompt": "We the people", "max_tokens": 40})

        threads = [threading.Thread(target=one, args=(0, False)),
                   threading.Thread(target=one, args=(1, True))]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        st, ans = results[0]
        check(st == 503 and "pipeline failed" in ans["error"]["message"],
              "non-streaming request in flight: 503 (%s)" % ans["error"]["message"][:100])
        r = results[1]
        check(r[0] == 503 and "pipeline failed" in r[1]["error"]["message"] or
              r[0] == 0 and "pipeline failed" in r[1]["error"]["message"],
              "streaming request in flight: 503 or an error event")
        rc = srv.proc.wait(30)
        check(rc != 0, "the job ended with an error (exit %d)" % rc)
        check(any("error" in l for l in srv.log), "with a message: " +
              next((l.strip() for l in srv.log if "error" in l), ""))
    finally:
        srv.stop()


def part_openai(a, workdir):
    """The official OpenAI client library (npm `openai`) under Node.js."""
    npm_dir = os.path.join(workdir, "npm")
    lib = os.path.join(npm_dir, "node_modules", "openai")
    if not os.path.isdir(lib):
        why = None
        try:
            r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", npm_dir,
                                "openai@4"], capture_output=True, text=True, timeout=180)
            if r.returncode:
                why = "npm install openai failed: " + r.stderr.strip()[-300:]
        except (OSError, subprocess.TimeoutExpired) as e:
            why = "cannot run npm: %s" % e
        if why:
            print("SKIP: the OpenAI client library cannot be installed here (" + why + ")")
            sys.exit(77)
    srv = Server(a.dist, a.model, [], a.launcher)
    try:
        p, n, t, k, tp, seed = PROMPTS[0], 30, 0.8, 40, 0.95, 11
        (ref_ids, ref_text), = reference(a.dist, a.model, [p], n, t, k, tp, seed, workdir, "oa")
        chat_prompt = "System: Be brief.\nUser: Who are you?\nAssistant:"
        (_, chat_text), = reference(a.dist, a.model, [chat_prompt], 20, t, k, tp, 4, workdir,
                                    "oachat")
        req = {"completion": {"model": "default-sparse", "prompt": p, "max_tokens": n,
                              "temperature": t, "top_p": tp, "top_k": k, "seed": seed,
                              "return_token_ids": True},
               "chat": {"model": "default-sparse", "max_tokens": 20, "temperature": t,
                        "top_p": tp, "top_k": k, "seed": 4,
                        "messages": [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "Who are you?"}]}}
        env = dict(os.environ, NODE_PATH=os.path.join(npm_dir, "node_modules"))
        r = subprocess.run(["node", os.path.join(os.path.dirname(__file__), "server_openai.cjs"),
                            "http://127.0.0.1:%d/v1" % srv.port, json.dumps(req)],
                           capture_output=True, text=True, timeout=120, env=env)
        check(r.returncode == 0, "the OpenAI client ran: " + r.stderr[-500:])
        out = json.loads(r.stdout)
        c = out["completion"]
        check(c["text"] == ref_text and c["token_ids"] == ref_ids and
              c["usage"]["completion_tokens"] == len(ref_ids),
              "openai completions.create equals the --prompt run")
        c = out["completion_stream"]
        check(c["text"] == ref_text and c["token_ids"] == ref_ids,
              "openai completions.create(stream) equals it too (%d events)" % c["events"])
        c = out["chat_stream"]
        check(c["role"] == "assistant" and c["text"] == chat_cut(chat_text),
              "openai chat.completions.create(stream) equals --prompt of the template")
        check(out["bad"] == {"status": 400, "param": "temperature",
                             "type": "invalid_request_error"},
              "openai: a bad field is a BadRequestError naming it")
        check(out["models"] == ["default-sparse"], "openai models.list")
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dist")
    ap.add_argument("model")
    ap.add_argument("workdir")
    ap.add_argument("--part", default="clients", choices=["clients", "mpi", "fault", "openai"])
    ap.add_argument("--mpi", nargs=argparse.REMAINDER, default=[], dest="launcher")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    t0 = time.time()
    {"clients": part_clients, "mpi": part_mpi, "fault": part_fault, "openai": part_openai}[a.part](a, a.workdir)
    print("all checks passed in %.1f s" % (time.time() - t0))


if __name__ == "__main__":
    main()
