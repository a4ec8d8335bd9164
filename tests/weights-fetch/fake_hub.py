#!/usr/bin/env python3
"""A fake Hugging Face Hub on loopback for tests/weights-fetch/test_fetch.py.

Serves the parts of the Hub API that build/weights-fetch uses, shaped like
the real ones (huggingface_hub's hf_api.py / file_download.py):
  GET /api/models/{repo}/revision/{rev}        -> {"sha": commit, ...}
  GET /api/models/{repo}/tree/{commit}?recursive=true
                                               -> [{"type","path","size","oid","lfs"}], Link pagination
  GET /{repo}/resolve/{rev}/{path}             -> 302 to the "CDN" (a second port) for LFS files,
                                                  307 to /api/resolve-cache/... (same host) for git files
with X-Error-Code / X-Error-Message on errors (RepoNotFound, RevisionNotFound,
GatedRepo, EntryNotFound) as the Hub sends them.

Misbehaviour is configured per file so each test can provoke one failure:
  drop_after: [N, times]   close the connection at file byte N (first `times` GETs that cover it)
  corrupt: times           flip the middle byte (first `times` GETs that cover it; -1 = always)
  throttle: bytes_per_s    send slowly
  ignore_range: true       answer 200 with the whole file to a Range request
  fail: [status, times]    answer this status to the first `times` resolves
  redirect: "loop"|"ftp"   a redirect loop, or a redirect to another protocol
  extra_bytes: N           send N bytes more than the listed size
and per repo: private, gated (+ granted tokens), info_body / tree_body (raw
bodies, e.g. broken JSON), page_size (tree pagination), extra_entries.

Usage: fake_hub.py CONFIG.json LOG.jsonl  -> prints "PORTS <hub> <cdn>" and
serves until killed. GET /_inflight answers how many requests are still
being served (the test waits for 0 before reading the log). Every request is appended to LOG.jsonl (one JSON object
per line: server, method, path, range, auth, status, t0, t1, sent).
Only the Python standard library is used.
"""
import hashlib
import json
import random
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GOOD_TOKEN_PREFIX = "hf_good"


def content(seed, size):
    """The deterministic bytes of a test file (the test computes the same)."""
    rng = random.Random(seed)
    step = 1 << 20  # randbytes() refuses 256 MiB and more at once
    return b"".join(rng.randbytes(min(step, size - i)) for i in range(0, size, step))


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class State:
    def __init__(self, config, log_path):
        self.config = config
        self.lock = threading.Lock()
        self.counters = {}
        self.log = open(log_path, "a", buffering=1)
        self.cdn_port = 0
        self.inflight = 0
        self.files = {}  # (repo, path) -> bytes
        for repo, r in config["repos"].items():
            for path, f in r.get("files", {}).items():
                self.files[(repo, path)] = content(f.get("seed", 0), f["size"])

    def bump(self, key):
        """Returns how many times key was seen before, then counts this one."""
        with self.lock:
            n = self.counters.get(key, 0)
            self.counters[key] = n + 1
            return n

    def write_log(self, entry):
        with self.lock:
            self.log.write(json.dumps(entry) + "\n")


def make_handler(state, server_name):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, body=b"", headers=None, error_code=None, error_message=None):
            if isinstance(body, str):
                body = body.encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if error_code:
                self.send_header("X-Error-Code", error_code)
            if error_message:
                self.send_header("X-Error-Message", error_message)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.status = status
            self.sent = len(body)

        def error_json(self, status, message, code=None):
            self.reply(status, json.dumps({"error": message}), {"Content-Type": "application/json"}, code,
                       message)

        def token(self):
            auth = self.headers.get("Authorization", "")
            return auth[len("Bearer "):] if auth.startswith("Bearer ") else None

        def do_GET(self):
            if self.path == "/_inflight":  # for the test: are all requests answered and logged?
                with state.lock:
                    n = state.inflight
                return self.reply(200, str(n))
            self.status = 0
            self.sent = 0
            t0 = time.time()
            with state.lock:
                state.inflight += 1
            try:
                if server_name == "cdn":
                    self.handle_cdn()
                else:
                    self.handle_hub()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            state.write_log({
                "server": server_name, "method": "GET", "path": self.path,
                "range": self.headers.get("Range"), "auth": self.headers.get("Authorization") is not None,
                "status": self.status, "t0": t0, "t1": time.time(), "sent": self.sent,
            })
            with state.lock:
                state.inflight -= 1

        # ---- access rules, like the Hub's
        def check_repo_access(self, repo, downloading):
            """Returns the repo config, or None after replying with the Hub's error."""
            r = state.config["repos"].get(repo)
            tok = self.token()
            good = tok is not None and tok.startswith(GOOD_TOKEN_PREFIX)
            if tok is not None and not good:
                self.error_json(401, "Invalid credentials in Authorization header")
                return None
            if r is None or (r.get("private") and not good):
                # The Hub does not tell an anonymous caller whether a repo exists.
                if tok is None:
                    self.error_json(401, "Repository Not Found for url", "RepoNotFound")
                else:
                    self.error_json(404, "Repository not found", "RepoNotFound")
                return None
            if downloading and r.get("gated"):
                if tok is None:
                    self.error_json(401, f"Access to model {repo} is restricted. You must have access to it "
                                         "and be authenticated to access it. Please log in.", "GatedRepo")
                    return None
                if tok not in r.get("granted", []):
                    self.error_json(403, f"Access to model {repo} is restricted and you are not in the "
                                         "authorized list. Visit the model page to ask for access.", "GatedRepo")
                    return None
            return r

        def handle_hub(self):
            url = urllib.parse.urlsplit(self.path)
            parts = [urllib.parse.unquote(p) for p in url.path.split("/")[1:]]
            query = urllib.parse.parse_qs(url.query)
            if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "revision":
                return self.repo_info("/".join(parts[2:4]), parts[5])
            if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "tree":
                return self.tree("/".join(parts[2:4]), parts[5], query)
            if len(parts) >= 7 and parts[:3] == ["api", "resolve-cache", "models"]:
                return self.resolve_cache("/".join(parts[3:5]), parts[5], "/".join(parts[6:]))
            if len(parts) >= 5 and parts[2] == "resolve":
                return self.resolve("/".join(parts[0:2]), parts[3], "/".join(parts[4:]))
            self.error_json(404, "no such route")

        def commit_of(self, r, rev):
            if rev in ("main", r["commit"]):
                return r["commit"]
            self.error_json(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            return None

        def repo_info(self, repo, rev):
            r = self.check_repo_access(repo, False)
            if r is None:
                return
            if "info_body" in r:
                return self.reply(200, r["info_body"], {"Content-Type": "application/json"})
            if self.commit_of(r, rev) is None:
                return
            self.reply(200, json.dumps({"id": repo, "sha": r["commit"], "gated": bool(r.get("gated")),
                                        "siblings": [{"rfilename": p} for p in r.get("files", {})]}),
                       {"Content-Type": "application/json"})

        def tree_entries(self, repo, r):
            entries, dirs = [], set()
            for path, f in r.get("files", {}).items():
                data = state.files[(repo, path)]
                for i in range(1, path.count("/") + 1):
                    dirs.add("/".join(path.split("/")[:i]))
                e = {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha1(data)}
                if f.get("lfs"):
                    e["oid"] = hashlib.sha1(path.encode()).hexdigest()  # the pointer file's id
                    e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                entries.append(e)
            for d in sorted(dirs):
                entries.append({"type": "directory", "path": d, "size": 0,
                                "oid": hashlib.sha1(d.encode()).hexdigest()})
            return entries + r.get("extra_entries", [])

        def tree(self, repo, rev, query):
            r = self.check_repo_access(repo, False)
            if r is None:
                return
            if "tree_body" in r:
                return self.reply(200, r["tree_body"], {"Content-Type": "application/json"})
            if rev != r["commit"]:  # weights-fetch lists the resolved commit, as huggingface_hub does
                return self.error_json(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            entries = self.tree_entries(repo, r)
            size = r.get("page_size", 1000)
            start = int(query.get("cursor", ["0"])[0])
            headers = {"Content-Type": "application/json"}
            if start + size < len(entries):
                host = self.headers.get("Host")
                headers["Link"] = (f'<http://{host}/api/models/{repo}/tree/{rev}?recursive=true'
                                   f'&cursor={start + size}>; rel="next"')
            self.reply(200, json.dumps(entries[start:start + size]), headers)

        def resolve(self, repo, rev, path):
            r = self.check_repo_access(repo, True)
            if r is None or self.commit_of(r, rev) is None:
                return
            f = r.get("files", {}).get(path)
            if f is None or f.get("missing"):
                return self.error_json(404, "Entry not found", "EntryNotFound")
            fail = f.get("fail")
            if fail and state.bump(("fail", repo, path)) < fail[1]:
                return self.error_json(fail[0], "temporary failure")
            if f.get("redirect") == "loop":
                return self.reply(302, b"", {"Location": self.path})
            if f.get("redirect") == "ftp":
                return self.reply(302, b"", {"Location": "ftp://127.0.0.1/x"})
            if f.get("lfs"):
                loc = f"http://127.0.0.1:{state.cdn_port}/cdn/{repo}/{urllib.parse.quote(path)}?sig=x"
                return self.reply(302, b"", {"Location": loc})
            # Small git files: a relative redirect on the same host, as the Hub does today.
            self.reply(307, b"", {"Location": f"/api/resolve-cache/models/{repo}/{r['commit']}/{urllib.parse.quote(path)}"})

        def resolve_cache(self, repo, commit, path):
            r = self.check_repo_access(repo, True)
            if r is None:
                return
            f = r.get("files", {}).get(path)
            if f is None or f.get("lfs") or commit != r["commit"]:
                return self.error_json(404, "Entry not found", "EntryNotFound")
            self.serve_file(repo, path, f)

        def handle_cdn(self):
            url = urllib.parse.urlsplit(self.path)
            parts = [urllib.parse.unquote(p) for p in url.path.split("/")[1:]]
            if len(parts) < 4 or parts[0] != "cdn":
                return self.reply(404, "no such object")
            repo, path = "/".join(parts[1:3]), "/".join(parts[3:])
            f = state.config["repos"].get(repo, {}).get("files", {}).get(path)
            if f is None:
                return self.reply(404, "no such object")
            self.serve_file(repo, path, f)

        # ---- the bytes, with Range and the configured misbehaviour
        def serve_file(self, repo, path, f):
            data = state.files[(repo, path)]
            start, end, ranged = 0, len(data) - 1, False  # end inclusive, as in Range
            rng = self.headers.get("Range")
            if rng and not f.get("ignore_range"):
                m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
                if not m:
                    return self.reply(400, "unsupported range")
                start, ranged = int(m.group(1)), True
                if m.group(2):
                    end = min(int(m.group(2)), end)
                if start > end:
                    return self.reply(416, "", {"Content-Range": f"bytes */{len(data)}"})
            body = bytearray(data[start:end + 1])
            if not ranged:
                body += b"\0" * f.get("extra_bytes", 0)
            mid = len(data) // 2  # the byte `corrupt` flips
            corrupt = f.get("corrupt", 0)
            if corrupt and start <= mid <= end and (corrupt < 0 or state.bump(("corrupt", repo, path)) < corrupt):
                body[mid - start] ^= 0xFF
            drop_at = None
            drop = f.get("drop_after")  # [absolute byte, times]
            if drop and start < drop[0] <= end and state.bump(("drop", repo, path)) < drop[1]:
                drop_at = drop[0] - start
            self.send_response(206 if ranged else 200)
            if ranged:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self.status = 206 if ranged else 200
            limit = len(body) if drop_at is None else drop_at
            chunk = 16384
            rate = f.get("throttle")
            pos = 0
            while pos < limit:
                piece = bytes(body[pos:min(pos + chunk, limit)])
                self.wfile.write(piece)
                self.wfile.flush()
                pos += len(piece)
                self.sent = pos
                if rate and pos < limit:
                    time.sleep(len(piece) / rate)
            if drop_at is not None:
                self.close_connection = True  # the client sees fewer bytes than Content-Length

    return Handler


def main():
    config = json.load(open(sys.argv[1]))
    state = State(config, sys.argv[2])
    hub = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state, "hub"))
    cdn = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state, "cdn"))
    hub.daemon_threads = cdn.daemon_threads = True
    state.cdn_port = cdn.server_address[1]
    threading.Thread(target=cdn.serve_forever, daemon=True).start()
    print(f"PORTS {hub.server_address[1]} {cdn.server_address[1]}", flush=True)
    hub.serve_forever()


if __name__ == "__main__":
    main()
