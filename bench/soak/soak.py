"""Soak benchmark (issue 18): one `medgemma serve` on the real Gemma 3 270M
under a mixed stream of clients for SOAK_MINUTES (default 20), sampled every
SOAK_SAMPLE_S (default 30) seconds:

  RSS, open fds and threads of the server (from /proc), the load average, and
  per window: requests done, p50/p95/p99 latency, intended 4xx, unexpected
  answers (anything else: must stay 0).

The mix, drawn in turn by SOAK_CLIENTS client threads (default 3):
  generate     POST /generate, 16 tokens, HTTP/1.1 keep-alive
  stream       POST /v1/chat/completions stream=true, 24 tokens, read to [DONE]
  cancel       the same stream, closed after the first event (client gone)
  bad          a malformed body (unknown field, trailing bytes, bad JSON): 400
  image        POST /analyze with a PNG: the 270M is text-only, so 400
  h2c          HTTP/2 prior knowledge: GET /health then POST /generate, 8 tokens

Writes a markdown table to bench/soak/results/soak-<commit>.md and prints it;
exits 1 when an unexpected answer came or RSS, fds or threads grew beyond
noise (RSS +10% from the 2-minute mark to the end; fds +8; threads +2).

Run it alone on the machine's bench lock:
  flock /work/locks/bench.lock python3 bench/soak/soak.py     (or `make soak`)
"""
import base64
import http.client
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "http"))
from http_fixture import Server, png_bytes  # noqa: E402

MINUTES = float(os.environ.get("SOAK_MINUTES", "20"))
SAMPLE_S = float(os.environ.get("SOAK_SAMPLE_S", "30"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "3"))
MODEL = os.environ.get("SOAK_MODEL",
                       os.path.join(os.environ.get("MEDGEMMA_CACHE", os.path.expanduser("~/.cache/medgemma-engine")),
                                    "gemma3-270m"))
KINDS = ["generate", "stream", "cancel", "bad", "image", "h2c"]
IMG = base64.b64encode(png_bytes(64, 64)).decode()
BAD_BODIES = [b'{"prompt": "hi", "max_tokens": 4} xyz', b'{"prompt": "hi", "max_token": 4}', b'{"prompt": "hi"',
              b'{"prompt": "a\\ud800", "max_tokens": 4}', b'{"prompt": "x", "prompt": "y"}']
PROMPTS = ["What is a pneumothorax?", "List three causes of chest pain.", "Explain what an X-ray shows.",
           "What does CT stand for?", "Describe a normal heart rate."]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = []
        self.counts = {k: 0 for k in KINDS}
        self.intended_4xx = 0
        self.unexpected = []

    def done(self, kind, ms, ok, what=""):
        with self.lock:
            self.latencies.append(ms)
            self.counts[kind] += 1
            if not ok:
                self.unexpected.append("%s: %s" % (kind, what[:160]))

    def take(self):
        with self.lock:
            lat, self.latencies = self.latencies, []
            counts = dict(self.counts)
            self.counts = {k: 0 for k in KINDS}
            four, self.intended_4xx = self.intended_4xx, 0
            return lat, counts, four


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


# ---- HTTP/2 by hand (prior knowledge), enough for one request per stream


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(index, value):
    """Literal header field without indexing, name from the static table
    (4-bit prefix: 15 and above continue in a second byte)."""
    v = value.encode()
    name = bytes([index]) if index < 15 else bytes([15, index - 15])
    return name + bytes([len(v)]) + v


def read_frame(sock):
    head = b""
    while len(head) < 9:
        chunk = sock.recv(9 - len(head))
        if not chunk:
            raise OSError("h2: connection closed")
        head += chunk
    n = int.from_bytes(head[:3], "big")
    body = b""
    while len(body) < n:
        chunk = sock.recv(n - len(body))
        if not chunk:
            raise OSError("h2: connection closed")
        body += chunk
    return head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF, body


def h2_status(block):
    """:status from a response header block (static-table or literal form)."""
    first = block[0]
    static = {0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500}
    if first in static:
        return static[first]
    if first & 0x0F == 8 or first & 0x3F == 8:  # literal with the :status name
        n = block[1] & 0x7F
        return int(block[2:2 + n])
    return -1


def h2_exchange(port, requests):
    """requests: [(method_byte, path, body)]; returns [(status, body bytes)]."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    out = []
    try:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0))
        stream = 1
        for method, path, body in requests:
            hdr = bytes([method, 0x86]) + literal(4, path) + literal(1, "soak")
            if body:
                hdr += literal(31, "application/json")  # content-type
                sock.sendall(frame(1, 0x4, stream, hdr) + frame(0, 0x1, stream, body))
            else:
                sock.sendall(frame(1, 0x5, stream, hdr))
            status, data = None, b""
            while True:
                kind, flags, sid, payload = read_frame(sock)
                if kind == 4 and not flags & 1:
                    sock.sendall(frame(4, 1, 0))  # SETTINGS ACK
                elif kind == 6 and not flags & 1:
                    sock.sendall(frame(6, 1, 0, payload))  # PING ACK
                elif kind == 7:
                    raise OSError("h2: GOAWAY")
                elif sid == stream and kind == 1:
                    status = h2_status(payload)
                    if flags & 1:
                        break
                elif sid == stream and kind == 0:
                    data += payload
                    if payload:
                        sock.sendall(frame(8, 0, 0, struct.pack(">I", len(payload))) +
                                     frame(8, 0, stream, struct.pack(">I", len(payload))))
                    if flags & 1:
                        break
                elif sid == stream and kind == 3:
                    raise OSError("h2: stream reset")
            out.append((status, data))
            stream += 2
    finally:
        sock.close()
    return out


# ---- the clients


def http1(port, method, path, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        c.request(method, path, body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def one(kind, port, stats, rng):
    t0 = time.time()
    ok, what = True, ""
    try:
        if kind == "generate":
            body = json.dumps({"prompt": rng.choice(PROMPTS), "max_tokens": 16, "temperature": 0.7,
                               "seed": rng.randrange(1 << 30)})
            status, data = http1(port, "POST", "/generate", body)
            ok = status == 200 and "text" in json.loads(data)
            what = "%d %r" % (status, data[:100])
        elif kind in ("stream", "cancel"):
            body = json.dumps({"messages": [{"role": "user", "content": rng.choice(PROMPTS)}], "max_tokens": 24,
                               "stream": True}).encode()
            sock = socket.create_connection(("127.0.0.1", port), timeout=300)
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
                         b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if kind == "cancel" and b"data: " in data:
                    break
            sock.close()
            ok = data.startswith(b"HTTP/1.1 200") and (kind == "cancel" or b"data: [DONE]" in data)
            what = repr(data[:100])
        elif kind == "bad":
            status, data = http1(port, "POST", "/generate", rng.choice(BAD_BODIES))
            ok = status == 400 and b"invalid_request_error" in data
            what = "%d %r" % (status, data[:100])
            if ok:
                with stats.lock:
                    stats.intended_4xx += 1
        elif kind == "image":
            body = json.dumps({"prompt": "Describe the image.", "images": [IMG], "max_tokens": 8})
            status, data = http1(port, "POST", "/analyze", body)
            ok = status == 400 and b"text only" in data  # the 270M has no vision tower
            what = "%d %r" % (status, data[:100])
            if ok:
                with stats.lock:
                    stats.intended_4xx += 1
        elif kind == "h2c":
            body = json.dumps({"prompt": rng.choice(PROMPTS), "max_tokens": 8}).encode()
            res = h2_exchange(port, [(0x82, "/health", b""), (0x83, "/generate", body)])
            ok = res[0][0] == 200 and res[1][0] == 200 and b'"text"' in res[1][1]
            what = repr(res)[:160]
    except Exception as e:  # noqa: BLE001 - counted as unexpected
        ok, what = False, repr(e)
    stats.done(kind, (time.time() - t0) * 1e3, ok, what)


def client(i, port, stats, stop):
    rng = random.Random(1000 + i)
    n = i
    while not stop.is_set():
        one(KINDS[n % len(KINDS)], port, stats, rng)
        n += 1


def proc_sample(pid):
    with open("/proc/%d/status" % pid) as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    rss_mb = int(status["VmRSS"].split()[0]) / 1024
    threads = int(status["Threads"])
    fds = len(os.listdir("/proc/%d/fd" % pid))
    return rss_mb, fds, threads


def main():
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=REPO).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True, cwd=REPO).stdout.strip()
    srv = Server(MODEL, threads=0).wait_healthy(300)
    pid = srv.proc.pid
    stats, stop = Stats(), threading.Event()
    threads = [threading.Thread(target=client, args=(i, srv.port, stats, stop), daemon=True) for i in range(CLIENTS)]
    t_start = time.time()
    for t in threads:
        t.start()
    rows = []
    load_start = os.getloadavg()
    print("| t (min) | RSS MiB | fds | threads | load 1m | done | p50 ms | p95 ms | p99 ms | intended 4xx | unexpected |",
          flush=True)
    print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    total_unexpected = 0
    while time.time() - t_start < MINUTES * 60:
        time.sleep(SAMPLE_S)
        if srv.proc.poll() is not None:
            print("the server exited with %s" % srv.proc.returncode)
            break
        rss, fds, nthreads = proc_sample(pid)
        lat, counts, four = stats.take()
        with stats.lock:
            unexpected = len(stats.unexpected) - total_unexpected
            total_unexpected = len(stats.unexpected)
        row = ((time.time() - t_start) / 60, rss, fds, nthreads, os.getloadavg()[0], len(lat), pct(lat, 50),
               pct(lat, 95), pct(lat, 99), four, unexpected, counts)
        rows.append(row)
        print("| %.1f | %.1f | %d | %d | %.2f | %d | %.0f | %.0f | %.0f | %d | %d |" % row[:11], flush=True)
    stop.set()
    for t in threads:
        t.join(330)
    load_end = os.getloadavg()
    rc = srv.stop()

    verdict = []
    if stats.unexpected:
        verdict.append("%d unexpected answers, first: %s" % (len(stats.unexpected), stats.unexpected[0]))
    base = next((r for r in rows if r[0] >= 2.0), rows[0] if rows else None)
    if base and rows:
        last = rows[-1]
        if last[1] > base[1] * 1.10:
            verdict.append("RSS grew %.1f -> %.1f MiB" % (base[1], last[1]))
        if last[2] > base[2] + 8:
            verdict.append("fds grew %d -> %d" % (base[2], last[2]))
        if last[3] > base[3] + 2:
            verdict.append("threads grew %d -> %d" % (base[3], last[3]))
    if rc != 0:
        verdict.append("SIGTERM exit status %r" % rc)
    totals = {k: sum(r[11][k] for r in rows) for k in KINDS}

    out = os.path.join(REPO, "bench", "soak", "results", "soak-%s.md" % commit)
    with open(out, "w") as f:
        f.write("# Soak: %s on the Gemma 3 270M (CPU), commit %s%s\n\n" % (
            "%.0f min" % MINUTES, commit, " (+ uncommitted changes)" if dirty else ""))
        f.write("Date %s UTC; %d client threads, mix %s in turn; sampled every %.0f s.\n" % (
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(t_start)), CLIENTS, ", ".join(KINDS), SAMPLE_S))
        f.write("Shared 2-core machine: load average %.2f at the start, %.2f at the end (column `load 1m` per row).\n" % (
            load_start[0], load_end[0]))
        f.write("Requests by kind: %s.\n\n" % ", ".join("%s %d" % (k, totals[k]) for k in KINDS))
        f.write("| t (min) | RSS MiB | fds | threads | load 1m | done | p50 ms | p95 ms | p99 ms | intended 4xx | unexpected |\n")
        f.write("|---|---|---|---|---|---|---|---|---|---|---|\n")
        for r in rows:
            f.write("| %.1f | %.1f | %d | %d | %.2f | %d | %.0f | %.0f | %.0f | %d | %d |\n" % r[:11])
        f.write("\nVerdict: %s\n" % ("no growth beyond noise, no unexpected answers, clean exit" if not verdict
                                     else "; ".join(verdict)))
    print("\nwrote %s" % out)
    print("verdict: %s" % ("ok" if not verdict else "; ".join(verdict)))
    return 1 if verdict else 0


if __name__ == "__main__":
    sys.exit(main())
