"""Shared helpers for the HTTP service tests (tests/http/test_*.py).

Starts a real `medgemma serve` process on 127.0.0.1 with a free port, talks
to it with http.client, and always kills it at the end (atexit and signal
handlers too). The model is the tiny random-weight preset written by
`medgemma synth-model` into a scratch directory.
"""
import atexit
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib

REPO = os.environ.get("REPO_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.environ.get("BUILD", "build")
BINARY = os.path.join(REPO, BUILD, "medgemma")
ASAN = os.environ.get("MEDGEMMA_ASAN") == "1"
TSAN = os.environ.get("MEDGEMMA_TSAN") == "1"
# Sanitized builds run several times slower.
SLOW = 4.0 if ASAN else 6.0 if TSAN else 1.0

_servers = []
_tmpdirs = []


def _cleanup():
    for s in list(_servers):
        s.kill()
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def _on_signal(signum, frame):
    _cleanup()
    sys.exit(1)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def scratch_dir():
    d = tempfile.mkdtemp(prefix="medgemma-http-")
    _tmpdirs.append(d)
    return d


def tiny_model():
    """Writes the tiny random-weight checkpoint (with the real tokenizer)."""
    out = os.path.join(scratch_dir(), "tiny")
    r = subprocess.run([BINARY, "synth-model", "--preset", "tiny", "--out", out, "--seed", "3"],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    if r.returncode != 0:
        raise RuntimeError("synth-model failed: " + r.stderr[-500:])
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, model_dir, env=None, args=(), threads=1):
        self.model_dir = model_dir
        self.port = free_port()
        self.log_path = os.path.join(scratch_dir(), "server.log")
        e = dict(os.environ)
        e["MEDGEMMA_THREADS"] = str(threads)
        e.pop("MEDGEMMA_API_KEY", None)
        e.pop("HF_TOKEN", None)
        if env:
            e.update(env)
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [BINARY, "serve", "--model", model_dir, "--host", "127.0.0.1", "--port", str(self.port)] + list(args),
            stdout=self.log_file, stderr=subprocess.STDOUT, env=e)
        _servers.append(self)

    def wait_healthy(self, timeout=120):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited with %s; log:\n%s" % (self.proc.returncode, self.log_tail()))
            try:
                status, _, _ = self.request("GET", "/health", timeout=2)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server not healthy after %ds; log:\n%s" % (timeout, self.log_tail()))

    def request(self, method, path, body=None, headers=None, timeout=60):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout * SLOW)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            if isinstance(body, str):
                body = body.encode()
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None, timeout=60):
        status, hdrs, data = self.request(method, path, body, headers, timeout)
        try:
            return status, hdrs, json.loads(data)
        except ValueError:
            raise AssertionError("%s %s -> %d, body is not JSON: %r" % (method, path, status, data[:200]))

    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def log_lines(self):
        out = []
        with open(self.log_path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append({"raw": line})
        return out

    def log_tail(self, n=30):
        with open(self.log_path) as f:
            return "".join(f.readlines()[-n:])

    def stop(self, timeout=30):
        """SIGTERM, then the exit status (killed and None after timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        if self in _servers:
            _servers.remove(self)
        self.log_file.close()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self in _servers:
            _servers.remove(self)


def png_bytes(width, height, seed=1):
    """A small RGB PNG with deterministic pixels (no external libraries)."""
    rows = []
    x = seed
    for _ in range(height):
        row = bytearray([0])
        for _ in range(width * 3):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            row.append((x >> 16) & 0xFF)
        rows.append(bytes(row))
    raw = b"".join(rows)

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def gray16_png_b64(width, height, seed=1):
    """A 16-bit grayscale PNG (a raw CT/MRI slice of stored values), base64."""
    rows = []
    x = seed
    for _ in range(height):
        row = bytearray([0])
        for _ in range(width):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            row += struct.pack(">H", (x >> 8) & 0xFFF)  # 0..4095, like CT stored values
        rows.append(bytes(row))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
           + chunk(b"IEND", b""))
    return base64.b64encode(png).decode()


def png_b64(width=32, height=32, seed=1, data_uri=False):
    b = base64.b64encode(png_bytes(width, height, seed)).decode()
    return "data:image/png;base64," + b if data_uri else b


class Results:
    """Prints one line per case and exits non-zero when one failed."""

    def __init__(self):
        self.failed = 0

    def case(self, name, fn, *args):
        try:
            fn(*args)
            print("ok " + name, flush=True)
            return True
        except Exception as e:  # the test's reason, on one line
            self.failed += 1
            msg = ("%s: %s" % (type(e).__name__, e)).replace("\n", " | ")
            print("FAIL %s: %s" % (name, msg[:600]), flush=True)
            return False

    def skip(self, name, why):
        print("skip %s: %s" % (name, why), flush=True)

    def finish(self):
        _cleanup()
        sys.exit(1 if self.failed else 0)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
