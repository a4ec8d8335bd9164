#!/usr/bin/env python3
"""Tests of build/weights-fetch against the fake Hub (fake_hub.py) on 127.0.0.1.

Prints "ok NAME" / "FAIL NAME: why" / "skip NAME: why" per case and exits
non-zero if any failed. The fake Hub runs for the whole file and is always
killed at the end; each weights-fetch run is bounded by a timeout.
Env: BUILD (default build).
"""
import hashlib
import http.client
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from fake_hub import content  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
BIN = os.path.abspath(os.path.join(BUILD, "weights-fetch"))
RUN_TIMEOUT = 30
COMMIT = "0123456789abcdef0123456789abcdef01234567"
GOOD = "hf_good_token"

KB = 1024


def f(size, seed, lfs=False, **kw):
    return dict(size=size, seed=seed, lfs=lfs, **kw)


REPOS = {
    "test/happy": {"commit": COMMIT, "page_size": 2, "files": {
        "config.json": f(700, 1),
        "model.safetensors": f(300 * KB, 2, lfs=True),
        "sub/dir/tokenizer.json": f(20 * KB, 3),
        "weights/extra.safetensors": f(50 * KB, 4, lfs=True),
        "empty.txt": f(0, 5),
    }},
    "test/private": {"commit": COMMIT, "private": True, "files": {"config.json": f(100, 6)}},
    "test/gated": {"commit": COMMIT, "gated": True, "granted": ["hf_good_granted"],
                   "files": {"config.json": f(100, 7), "model.safetensors": f(10 * KB, 8, lfs=True)}},
    "test/missingfile": {"commit": COMMIT, "files": {"a.bin": f(100, 9, lfs=True, missing=True)}},
    "test/drop": {"commit": COMMIT, "files": {"model.bin": f(400 * KB, 10, lfs=True, drop_after=[150000, 1])}},
    "test/droprange": {"commit": COMMIT, "files": {
        "model.bin": f(200 * KB, 11, lfs=True, drop_after=[90000, 1], ignore_range=True)}},
    "test/flaky": {"commit": COMMIT, "files": {"model.bin": f(30 * KB, 12, lfs=True, fail=[503, 2])}},
    "test/corrupt": {"commit": COMMIT, "files": {
        "model.bin": f(256 * KB, 13, lfs=True, corrupt=1), "config.json": f(500, 14, corrupt=1)}},
    "test/corruptalways": {"commit": COMMIT, "files": {"model.bin": f(64 * KB, 15, lfs=True, corrupt=-1)}},
    "test/slow": {"commit": COMMIT, "files": {
        "big.bin": f(1200 * KB, 16, lfs=True, throttle=800 * KB), "config.json": f(300, 17)}},
    "test/parallel": {"commit": COMMIT, "files": {
        f"shard-{i}.safetensors": f(160 * KB, 20 + i, lfs=True, throttle=400 * KB) for i in range(4)}},
    "test/diskfull": {"commit": COMMIT, "files": {"big.bin": f(2048 * KB, 30, lfs=True)}},
    "test/perm": {"commit": COMMIT, "files": {"config.json": f(300, 40), "model.bin": f(50 * KB, 41, lfs=True)}},
    "test/diskfull2": {"commit": COMMIT, "files": {"big.bin": f(700 * KB, 31, lfs=True, throttle=1000 * KB)}},
    # Large files in byte ranges at once (run with --piece-size 204800 or 409600).
    "test/pieces": {"commit": COMMIT, "files": {"big.safetensors": f(800 * KB, 50, lfs=True, throttle=400 * KB)}},
    "test/piecedrop": {"commit": COMMIT, "files": {"big.bin": f(600 * KB, 51, lfs=True, drop_after=[350000, 1])}},
    "test/piecenorange": {"commit": COMMIT, "files": {"big.bin": f(400 * KB, 52, lfs=True, ignore_range=True)}},
    "test/piececorrupt": {"commit": COMMIT, "files": {"big.bin": f(400 * KB, 53, lfs=True, corrupt=1)}},
    "test/piecekill": {"commit": COMMIT, "files": {"big.bin": f(1600 * KB, 54, lfs=True, throttle=300 * KB)}},
    "odd/loop": {"commit": COMMIT, "files": {"a.bin": f(100, 40, lfs=True, redirect="loop")}},
    "odd/ftp": {"commit": COMMIT, "files": {"a.bin": f(100, 41, lfs=True, redirect="ftp")}},
    "odd/toolong": {"commit": COMMIT, "files": {"a.bin": f(1000, 42, lfs=True, extra_bytes=10)}},
    "odd/down": {"commit": COMMIT, "files": {"a.bin": f(100, 43, lfs=True, fail=[500, 99])}},
    # Odd server answers: each must end in a clear message, never a crash.
    "bad/notjson": {"commit": COMMIT, "info_body": "<html>oops</html>"},
    "bad/nosha": {"commit": COMMIT, "info_body": '{"id": "bad/nosha"}'},
    "bad/shatype": {"commit": COMMIT, "info_body": '{"sha": 12345}'},
    "bad/treeobject": {"commit": COMMIT, "tree_body": '{"files": []}'},
    "bad/treetrunc": {"commit": COMMIT, "tree_body": '[{"type": "file", "path": "a"'},
    "bad/nopath": {"commit": COMMIT, "tree_body": '[{"type": "file", "size": 3, "oid": "' + "a" * 40 + '"}]'},
    "bad/nooid": {"commit": COMMIT, "tree_body": '[{"type": "file", "path": "a", "size": 3}]'},
    "bad/negsize": {"commit": COMMIT, "tree_body": '[{"type": "file", "path": "a", "size": -5, "oid": "'
                    + "a" * 40 + '"}]'},
    "bad/lfsoid": {"commit": COMMIT, "tree_body": '[{"type": "file", "path": "a", "size": 3, "oid": "' + "a" * 40
                   + '", "lfs": {"oid": "xyz", "size": 3}}]'},
    "bad/traversal": {"commit": COMMIT, "tree_body": '[{"type": "file", "path": "../../evil.txt", "size": 3, '
                      '"oid": "' + "a" * 40 + '"}]'},
    "bad/absolute": {"commit": COMMIT, "tree_body": '[{"type": "file", "path": "/tmp/evil.txt", "size": 3, '
                     '"oid": "' + "a" * 40 + '"}]'},
    "bad/statedir": {"commit": COMMIT, "tree_body": '[{"type": "file", "path": ".weights-fetch/lock", "size": 3, '
                     '"oid": "' + "a" * 40 + '"}]'},
    "bad/duplicate": {"commit": COMMIT, "tree_body": json.dumps([{"type": "file", "path": "a", "size": 3,
                                                                  "oid": "a" * 40}] * 2)},
    "bad/entrytype": {"commit": COMMIT, "tree_body": '[1, 2, 3]'},
}


class Failed(Exception):
    pass


class Skip(Exception):
    pass


def check(cond, why):
    if not cond:
        raise Failed(why)


def check_clean(stderr):
    """Under make test-asan, a sanitizer report fails the case even when the exit status looks right."""
    for marker in ("Sanitizer", "runtime error:"):
        check(marker not in stderr, "sanitizer report: " + stderr[stderr.find(marker) - 200:][:1500])


class Env:
    """The fake Hub process, its log, and a scratch folder."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="wf-test-")
        cfg = os.path.join(self.tmp, "hub.json")
        with open(cfg, "w") as fp:
            json.dump({"repos": REPOS}, fp)
        self.log = os.path.join(self.tmp, "hub.log")
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_hub.py"), cfg, self.log],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("PORTS "):
            self.close()
            raise RuntimeError("the fake hub did not start: " + line)
        self.port, self.cdn_port = (int(x) for x in line.split()[1:3])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.count = 0

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def new_dir(self, name):
        self.count += 1
        return os.path.join(self.tmp, f"{self.count}-{name}")

    def env(self, token=GOOD, **extra):
        e = {k: v for k, v in os.environ.items()
             if not k.upper().startswith(("HF_", "HUGGING", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"))}
        e.update(HOME=os.path.join(self.tmp, "home"), HF_ENDPOINT=self.endpoint, NO_PROXY="127.0.0.1,localhost")
        if token:
            e["HF_TOKEN"] = token
        e.update(extra)
        return e

    def settle(self):
        """Waits until the hub has answered and logged every request."""
        deadline = time.time() + 10
        while time.time() < deadline:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            c.request("GET", "/_inflight")
            n = int(c.getresponse().read())
            c.close()
            if n == 0:
                return
            time.sleep(0.02)
        raise Failed("the fake hub still serves requests after 10 s")

    def requests(self):
        self.settle()
        with open(self.log) as fp:
            return [json.loads(line) for line in fp if line.strip()]

    def mark(self):
        return len(self.requests())

    def run(self, repo, out, *args, token=GOOD, env=None, timeout=RUN_TIMEOUT):
        cmd = [BIN, repo, "--out", out, "--progress", "lines", *args]
        p = subprocess.run(cmd, env=env or self.env(token), capture_output=True, timeout=timeout)
        err = p.stderr.decode(errors="replace")
        check(p.returncode >= 0, f"killed by signal {-p.returncode}: {err[-500:]}")
        check_clean(err)
        return p.returncode, err


def dir_state(out):
    p = subprocess.run([BIN, "--dir-state", "--out", out], capture_output=True, timeout=RUN_TIMEOUT)
    check(p.returncode == 0, f"--dir-state failed: {p.stderr.decode()[-200:]}")
    check_clean(p.stderr.decode())
    return p.stdout.decode().strip()


def expected(repo, path):
    spec = REPOS[repo]["files"][path]
    return content(spec["seed"], spec["size"])


def visible_files(out):
    """Paths under out, outside the .weights-fetch state folder."""
    found = []
    for root, dirs, files in os.walk(out):
        dirs[:] = [d for d in dirs if not (root == out and d == ".weights-fetch")]
        found += [os.path.relpath(os.path.join(root, x), out) for x in files]
    return sorted(found)


def check_complete(repo, out, paths=None):
    paths = sorted(paths or REPOS[repo]["files"])
    check(visible_files(out) == paths, f"files in {out}: {visible_files(out)}, expected {paths}")
    for p in paths:
        with open(os.path.join(out, p), "rb") as fp:
            check(fp.read() == expected(repo, p), f"{p}: content differs from the hub's")
    parts = os.path.join(out, ".weights-fetch", "parts")
    left = [x for _, _, fs in os.walk(parts) for x in fs] if os.path.isdir(parts) else []
    check(not left, f".part files left behind: {left}")


def fail_run(e, repo, out, *needles, token=GOOD):
    rc, err = e.run(repo, out, token=token)
    check(rc == 1, f"exit status {rc}, expected 1; stderr: {err[-400:]}")
    for n in needles:
        check(n in err, f"stderr lacks {n!r}: {err[-600:]}")
    check(not visible_files(out) if os.path.isdir(out) else True, f"files were written: {visible_files(out)}")
    return err


# ---- the cases


def test_happy_path_with_redirects(e):
    out = e.new_dir("happy")
    check(dir_state(out) == "empty", "a missing dir is not 'empty'")
    mark = e.mark()
    rc, err = e.run("test/happy", out)
    check(rc == 0, f"exit {rc}: {err[-500:]}")
    check_complete("test/happy", out)
    check(dir_state(out) == "complete", f"dir state after success: {dir_state(out)}")
    other = e.new_dir("baked")
    os.makedirs(other)
    open(os.path.join(other, "config.json"), "w").close()
    check(dir_state(other) == "other", "a hand-filled dir is not 'other'")
    reqs = e.requests()[mark:]
    resolves = [r for r in reqs if "/resolve/" in r["path"]]
    cdn = [r for r in reqs if r["server"] == "cdn"]
    check(all(f"/resolve/{COMMIT}/" in r["path"] for r in resolves), "resolve URLs must use the commit hash")
    lfs = [r for r in resolves if "safetensors" in r["path"]]
    check(len(lfs) == 2 and all(r["status"] == 302 for r in lfs), f"LFS resolves not redirected: {lfs}")
    cached = [r for r in reqs if "/api/resolve-cache/" in r["path"]]
    # (empty.txt needs no request: a 0-byte file is checked against its git sha1 directly)
    check(len(cached) == 2 and all(r["status"] == 200 for r in cached), f"relative 307s not followed: {cached}")
    check(len(cdn) == 2 and all(r["status"] == 200 for r in cdn), f"CDN requests: {cdn}")
    check(all(r["auth"] for r in reqs if r["server"] == "hub"), "the token was not sent to the Hub")
    check(not any(r["auth"] for r in cdn), "the token leaked to the CDN host")
    pages = [r for r in reqs if "/tree/" in r["path"]]
    check(len(pages) >= 3, f"tree pagination not followed: {len(pages)} page requests")
    check("done model.safetensors" in err and "sha256 verified" in err, "no per-file progress line")
    return out


def test_rerun_skips_complete_files(e, out):
    check(out is not None, "needs the happy path's output, which failed")
    mark = e.mark()
    rc, err = e.run("test/happy", out)
    check(rc == 0, f"exit {rc}: {err[-500:]}")
    reqs = e.requests()[mark:]
    downloads = [r for r in reqs if "/resolve/" in r["path"] or r["server"] == "cdn"]
    check(not downloads, f"complete files downloaded again: {[r['path'] for r in downloads]}")
    check("0 to download" in err, f"summary does not say nothing was downloaded: {err[-300:]}")
    # A file damaged on disk (same size) is noticed and fetched again.
    path = os.path.join(out, "sub/dir/tokenizer.json")
    with open(path, "r+b") as fp:
        fp.seek(100)
        fp.write(b"X")
    os.utime(path, (time.time() + 5, time.time() + 5))
    mark = e.mark()
    rc, err = e.run("test/happy", out)
    check(rc == 0, f"exit {rc}: {err[-500:]}")
    got = [r["path"] for r in e.requests()[mark:] if "/resolve/" in r["path"]]
    check(len(got) == 1 and got[0].endswith("sub/dir/tokenizer.json"), f"re-downloaded: {got}")
    check_complete("test/happy", out)


def test_include_filter(e):
    out = e.new_dir("include")
    rc, err = e.run("test/happy", out, "--include", "*.json")
    check(rc == 0, f"exit {rc}: {err[-500:]}")
    check_complete("test/happy", out, ["config.json", "sub/dir/tokenizer.json"])
    rc, err = e.run("test/happy", e.new_dir("include-none"), "--include", "*.gguf")
    check(rc == 1 and "matches --include" in err, f"no-match not reported: {rc} {err[-300:]}")


def test_token_from_file(e):
    home = os.path.join(e.tmp, "hfhome")
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, "token"), "w") as fp:
        fp.write(GOOD + "\n")
    out = e.new_dir("tokenfile")
    rc, err = e.run("test/private", out, env=e.env(token=None, HF_HOME=home))
    check(rc == 0, f"HF_HOME/token not used: {err[-400:]}")
    check_complete("test/private", out)
    tok = os.path.join(e.tmp, "tokpath")
    with open(tok, "w") as fp:
        fp.write("  " + GOOD + "  \n")
    out = e.new_dir("tokenpath")
    rc, err = e.run("test/private", out, env=e.env(token=None, HF_TOKEN_PATH=tok))
    check(rc == 0, f"HF_TOKEN_PATH not used: {err[-400:]}")


def test_401_without_token(e):
    fail_run(e, "test/private", e.new_dir("401"), "HTTP 401", "HF_TOKEN=", "huggingface.co/settings/tokens",
             token=None)


def test_401_bad_token(e):
    fail_run(e, "test/private", e.new_dir("401b"), "HTTP 401", "rejected the token", "HF_TOKEN", token="hf_bad")


def test_403_gated_repo(e):
    err = fail_run(e, "test/gated", e.new_dir("403"), "HTTP 403", "gated", "accept the terms",
                   f"{e.endpoint}/test/gated")
    check("hf_good" not in err, "the token appears in the message")
    fail_run(e, "test/gated", e.new_dir("401g"), "HTTP 401", "gated", "HF_TOKEN", "Accept its terms", token=None)
    out = e.new_dir("gated-ok")
    rc, err = e.run("test/gated", out, token="hf_good_granted")
    check(rc == 0, f"granted token refused: {err[-300:]}")
    check_complete("test/gated", out)


def test_404_repo_revision_file(e):
    fail_run(e, "test/nosuchrepo", e.new_dir("404"), "HTTP 404", "repo test/nosuchrepo not found")
    out = e.new_dir("404rev")
    rc, err = e.run("test/happy", out, "--revision", "v9")
    check(rc == 1 and "revision \"v9\" not found" in err, f"bad revision: {rc} {err[-300:]}")
    fail_run(e, "test/missingfile", e.new_dir("404f"), "HTTP 404", "file a.bin not found")


def test_503_retried(e):
    out = e.new_dir("flaky")
    rc, err = e.run("test/flaky", out)
    check(rc == 0, f"exit {rc}: {err[-400:]}")
    check("HTTP 503" in err and "retrying" in err, "the retry is not reported")
    check_complete("test/flaky", out)


def test_dropped_connection_resumes_with_range(e):
    out = e.new_dir("drop")
    mark = e.mark()
    rc, err = e.run("test/drop", out)
    check(rc == 0, f"exit {rc}: {err[-400:]}")
    check_complete("test/drop", out)
    cdn = [r for r in e.requests()[mark:] if r["server"] == "cdn"]
    check(len(cdn) == 2, f"expected 2 CDN requests (drop, resume), got {len(cdn)}")
    check(cdn[0]["range"] is None and cdn[0]["sent"] == 150000, f"first request: {cdn[0]}")
    check(cdn[1]["range"] == "bytes=150000-" and cdn[1]["status"] == 206, f"resume request: {cdn[1]}")
    check(cdn[1]["sent"] == 400 * KB - 150000, "the resume fetched more than the rest")


def test_server_ignoring_range_restarts(e):
    out = e.new_dir("droprange")
    mark = e.mark()
    rc, err = e.run("test/droprange", out)
    check(rc == 0, f"exit {rc}: {err[-400:]}")
    check_complete("test/droprange", out)
    cdn = [r for r in e.requests()[mark:] if r["server"] == "cdn"]
    check(len(cdn) == 2 and cdn[1]["range"] == "bytes=90000-" and cdn[1]["status"] == 200, f"{cdn}")


def test_corrupted_byte_refetched(e):
    out = e.new_dir("corrupt")
    mark = e.mark()
    rc, err = e.run("test/corrupt", out)
    check(rc == 0, f"exit {rc}: {err[-400:]}")
    check_complete("test/corrupt", out)
    check("checksum mismatch for model.bin" in err and "checksum mismatch for config.json" in err,
          f"mismatches not reported: {err[-600:]}")
    reqs = e.requests()[mark:]
    check(len([r for r in reqs if r["server"] == "cdn"]) == 2, "LFS file not fetched exactly twice")
    cached = [r for r in reqs if "/resolve-cache/" in r["path"] and r["path"].endswith("/config.json")]
    check(len(cached) == 2, "git file not fetched exactly twice")


def test_corruption_reported_after_retries(e):
    out = e.new_dir("corruptalways")
    err = fail_run(e, "test/corruptalways", out, "checksum mismatch for model.bin after 3 downloads",
                   hashlib.sha256(expected("test/corruptalways", "model.bin")).hexdigest())
    check(not os.path.exists(os.path.join(out, "model.bin")), "a corrupt file was moved into place")


def test_interrupted_run_resumes(e):
    out = e.new_dir("kill")
    part = os.path.join(out, ".weights-fetch", "parts", "big.bin.part")
    mark = e.mark()
    proc = subprocess.Popen([BIN, "test/slow", "--out", out, "--progress", "none"], env=e.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 15
        while time.time() < deadline and (not os.path.exists(part) or os.path.getsize(part) < 300 * KB):
            time.sleep(0.02)
        check(os.path.exists(part), "no .part file appeared")
        rc, err = e.run("test/slow", out)  # a second run while the first holds the lock
        check(rc == 1 and "another weights-fetch" in err, f"concurrent run not refused: {rc} {err[-300:]}")
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    have = os.path.getsize(part)
    check(0 < have < 1200 * KB, f"part size {have}")
    for p in visible_files(out):  # anything already visible must be complete
        with open(os.path.join(out, p), "rb") as fp:
            check(fp.read() == expected("test/slow", p), f"half-written {p} in the output dir")
    check("big.bin" not in visible_files(out), "big.bin visible before it was complete")
    check(dir_state(out) == "partial", f"dir state after the kill: {dir_state(out)}")
    rc, err = e.run("test/slow", out)
    check(rc == 0, f"rerun: exit {rc}: {err[-400:]}")
    check_complete("test/slow", out)
    cdn = [r for r in e.requests()[mark:] if r["server"] == "cdn"]
    resumed = [r for r in cdn if r["range"] and r["status"] == 206]
    check(resumed and int(resumed[-1]["range"][6:-1]) >= have - 64 * KB,
          f"the rerun did not resume near byte {have}: {[r['range'] for r in cdn]}")
    check("resuming big.bin" in err, "the resume is not reported")


def max_overlap(intervals):
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals], key=lambda x: (x[0], x[1]))
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def test_parallel_downloads_overlap(e):
    results = {}
    for par in ("4", "1"):
        out = e.new_dir("par" + par)
        mark = e.mark()
        t0 = time.time()
        rc, err = e.run("test/parallel", out, "--parallel", par)
        results[par] = time.time() - t0
        check(rc == 0, f"exit {rc}: {err[-300:]}")
        check_complete("test/parallel", out)
        cdn = [(r["t0"], r["t1"]) for r in e.requests()[mark:] if r["server"] == "cdn"]
        check(len(cdn) == 4, f"{len(cdn)} CDN requests")
        results[par + "overlap"] = max_overlap(cdn)
    check(results["4overlap"] >= 3, f"--parallel 4: at most {results['4overlap']} downloads overlapped")
    check(results["1overlap"] == 1, f"--parallel 1: {results['1overlap']} downloads overlapped")
    check(results["4"] < results["1"] * 0.6, f"parallel {results['4']:.2f}s vs serial {results['1']:.2f}s")
    print(f"   (4 files x 0.4 s each: --parallel 4 took {results['4']:.2f} s, --parallel 1 {results['1']:.2f} s)")


def cdn_ranges(e, mark):
    return [r for r in e.requests()[mark:] if r["server"] == "cdn"]


def test_large_file_in_pieces(e):
    out = e.new_dir("pieces")
    mark = e.mark()
    t0 = time.time()
    rc, err = e.run("test/pieces", out, "--piece-size", "204800")
    took = time.time() - t0
    check(rc == 0, f"exit {rc}: {err[-300:]}")
    check_complete("test/pieces", out)
    cdn = cdn_ranges(e, mark)
    want = sorted(f"bytes={i * 204800}-{i * 204800 + 204799}" for i in range(4))
    check(sorted(r["range"] for r in cdn) == want, f"ranges asked: {[r['range'] for r in cdn]}")
    check(all(r["status"] == 206 for r in cdn), "not all answered 206")
    overlap = max_overlap([(r["t0"], r["t1"]) for r in cdn])
    check(overlap >= 3, f"only {overlap} ranges of one file overlapped")
    check("4 pieces" in err, "the split is not reported")
    check(not os.path.exists(os.path.join(out, ".weights-fetch", "parts", "big.safetensors.part.pieces")),
          ".pieces file left behind")
    print(f"   (800 KB at 400 KB/s per connection in 4 pieces: {took:.2f} s)")


def test_piece_dropped_resumes_within_piece(e):
    out = e.new_dir("piecedrop")
    mark = e.mark()
    rc, err = e.run("test/piecedrop", out, "--piece-size", "204800")
    check(rc == 0, f"exit {rc}: {err[-300:]}")
    check_complete("test/piecedrop", out)
    ranges = sorted(r["range"] for r in cdn_ranges(e, mark))
    want = sorted(["bytes=0-204799", "bytes=204800-409599", "bytes=350000-409599", "bytes=409600-614399"])
    check(ranges == want, f"ranges asked: {ranges}")


def test_pieces_fall_back_without_range_support(e):
    out = e.new_dir("piecenorange")
    mark = e.mark()
    rc, err = e.run("test/piecenorange", out, "--piece-size", "204800")
    check(rc == 0, f"exit {rc}: {err[-300:]}")
    check_complete("test/piecenorange", out)
    check("ignores byte ranges" in err, "the fallback is not reported")
    cdn = cdn_ranges(e, mark)
    check(len(cdn) == 2 and cdn[1]["range"] is None, f"requests: {[(r['range'], r['status']) for r in cdn]}")
    check(max_overlap([(r["t0"], r["t1"]) for r in cdn]) == 1, "a second range started before 206 was seen")


def test_pieces_corruption_refetched(e):
    out = e.new_dir("piececorrupt")
    mark = e.mark()
    rc, err = e.run("test/piececorrupt", out, "--piece-size", "204800")
    check(rc == 0, f"exit {rc}: {err[-300:]}")
    check_complete("test/piececorrupt", out)
    check("checksum mismatch for big.bin" in err, "the mismatch is not reported")
    check(len(cdn_ranges(e, mark)) == 4, "expected 2 pieces x 2 downloads")


def test_pieces_interrupted_run_resumes(e):
    out = e.new_dir("piecekill")
    state = os.path.join(out, ".weights-fetch", "parts", "big.bin.part.pieces")
    mark = e.mark()
    proc = subprocess.Popen([BIN, "test/piecekill", "--out", out, "--progress", "none", "--piece-size", "409600"],
                            env=e.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def saved():
        try:
            with open(state) as fp:
                return [tuple(int(x) for x in line.split()) for line in fp.read().splitlines()[1:]]
        except (OSError, ValueError):
            return []

    try:
        deadline = time.time() + 15
        while time.time() < deadline and sum(p[2] for p in saved()) < 200 * KB:
            time.sleep(0.02)
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    pieces = saved()
    check(len(pieces) == 4 and sum(p[2] for p in pieces) >= 200 * KB, f"saved progress: {pieces}")
    check("big.bin" not in visible_files(out), "big.bin visible before it was complete")
    mark = e.mark()
    rc, err = e.run("test/piecekill", out)  # default --piece-size: the saved layout wins
    check(rc == 0, f"rerun: exit {rc}: {err[-400:]}")
    check_complete("test/piecekill", out)
    asked = [r["range"] for r in cdn_ranges(e, mark)]
    want = [f"bytes={s + have}-{end - 1}" for s, end, have in pieces if have < end - s]
    check(sorted(asked) == sorted(want), f"rerun asked {asked}, saved state says {want}")
    check("resuming big.bin" in err, "the resume is not reported")


def test_bad_server_answers(e):
    cases = {
        "bad/notjson": "not valid JSON", "bad/nosha": "no \"sha\"", "bad/shatype": "no \"sha\"",
        "bad/treeobject": "not a JSON array", "bad/treetrunc": "not valid JSON", "bad/nopath": "no \"path\"",
        "bad/nooid": "is not a git sha1", "bad/negsize": "no valid \"size\"", "bad/lfsoid": "is not a sha256",
        "bad/traversal": "unsafe path", "bad/absolute": "unsafe path", "bad/statedir": "unsafe path",
        "bad/duplicate": "names a twice", "bad/entrytype": "is not an object",
    }
    for repo, needle in cases.items():
        out = e.new_dir(repo.replace("/", "-"))
        rc, err = e.run(repo, out)
        check(rc == 1 and needle in err, f"{repo}: exit {rc}, stderr {err[-300:]!r}")
    check(not os.path.exists(os.path.join(e.tmp, "evil.txt")), "path traversal wrote a file")
    downloads = {
        "odd/loop": ["downloading a.bin", "redirects hit maximum"], "odd/ftp": ["downloading a.bin", "Unsupported protocol"],
        "odd/toolong": ["checksum mismatch for a.bin after 3 downloads", "more than the 1000 bytes listed"],
        "odd/down": ["giving up on a.bin after 2 attempts", "HTTP 500"],
    }
    for repo, needles in downloads.items():
        out = e.new_dir(repo.replace("/", "-"))
        rc, err = e.run(repo, out, "--retries", "2")
        check(rc == 1 and all(n in err for n in needles) and not visible_files(out),
              f"{repo}: exit {rc}, stderr {err[-300:]!r}")


def test_usage_errors(e):
    p = subprocess.run([BIN], capture_output=True, timeout=RUN_TIMEOUT)
    check(p.returncode == 2 and b"usage" in p.stderr, "no usage on missing REPO")
    p = subprocess.run([BIN, "x/y", "--parallel", "0"], capture_output=True, timeout=RUN_TIMEOUT)
    check(p.returncode == 2 and b"--parallel" in p.stderr, "bad --parallel accepted")
    rc, err = e.run("a/b/c", e.new_dir("badrepo"))
    check(rc == 1 and "bad repo" in err, f"bad repo name: {err[-200:]}")
    rc, err = e.run("test/happy", e.new_dir("badep"), env=e.env(HF_ENDPOINT="ftp://x"))
    check(rc == 1 and "HF_ENDPOINT" in err, f"bad endpoint: {err[-200:]}")
    rc, err = e.run("test/happy", e.new_dir("noserver"), env=e.env(HF_ENDPOINT="http://127.0.0.1:1"))
    check(rc == 1 and "cannot reach" in err, f"unreachable endpoint: {err[-200:]}")


def test_progress_bar_on_terminal(e):
    out = e.new_dir("tty")
    try:
        pid, fd = pty.fork()
    except OSError as exc:
        raise Skip(f"no pseudo-terminal here ({exc}), so the bar cannot be checked")
    if pid == 0:
        os.execve(BIN, [BIN, "test/parallel", "--out", out, "--parallel", "2"], e.env())
    data = b""
    deadline = time.time() + RUN_TIMEOUT
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 1)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    _, status = os.waitpid(pid, 0)
    text = data.decode(errors="replace")
    check_clean(text)
    check(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"status {status}: {text[-300:]}")
    check("\r[" in text and "%" in text and ("MB/s" in text or "KB/s" in text), f"no bar: {text[-300:]!r}")
    rc, err = e.run("test/happy", e.new_dir("lines"))
    check("\r" not in err and "weights-fetch: " in err, "plain lines mode drew a bar")
    # --progress log: JSON lines on stdout for Cloud Logging, the error included.
    for repo, token, rc_want, needle in (("test/happy", GOOD, 0, "done model.safetensors"),
                                         ("test/private", None, 1, "HTTP 401")):
        p = subprocess.run([BIN, repo, "--out", e.new_dir("log"), "--progress", "log"], env=e.env(token=token),
                           capture_output=True, timeout=RUN_TIMEOUT)
        check_clean(p.stderr.decode())
        lines = [json.loads(x) for x in p.stdout.decode().splitlines()]
        check(p.returncode == rc_want and lines and all("severity" in x and "message" in x for x in lines),
              f"log mode output: {p.stdout.decode()[-300:]!r}")
        check(any(needle in x["message"] for x in lines), f"log mode lacks {needle!r}")


def test_disk_full(e):
    if not shutil.which("unshare"):
        raise Skip("unshare(1) is missing, so no small tmpfs can be mounted")
    mnt = os.path.join(e.tmp, "small")
    os.makedirs(mnt)
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        raise Skip("user+mount namespaces are not allowed here, so no small tmpfs can be mounted: "
                   + probe.stderr.decode().strip()[:100])
    # 1) Not enough room for the file: refused before downloading.
    script = (f'mount -t tmpfs -o size=1m tmpfs "{mnt}" && exec "{BIN}" test/diskfull --out "{mnt}/out" '
              '--progress none')
    p = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script], env=e.env(),
                       capture_output=True, timeout=RUN_TIMEOUT)
    err = p.stderr.decode()
    check_clean(err)
    check(p.returncode == 1 and "disk full" in err and "needs" in err, f"preflight: {p.returncode} {err[-300:]}")
    # 2) The disk fills up during the download (another writer takes the space).
    script = (f'mount -t tmpfs -o size=1m tmpfs "{mnt}" && {{ "{BIN}" test/diskfull2 --out "{mnt}/out" '
              f'--progress none & sleep 0.25; dd if=/dev/zero of="{mnt}/filler" bs=4k 2>/dev/null; wait $!; }}')
    p = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script], env=e.env(),
                       capture_output=True, timeout=RUN_TIMEOUT)
    err = p.stderr.decode()
    check_clean(err)
    check(p.returncode == 1 and "disk full while writing big.bin" in err, f"mid-write: {p.returncode} {err[-300:]}")
    # 3) Resumable: once space is freed, a rerun finishes the file from where it stopped.
    saved = os.path.join(e.tmp, "diskfull-result.bin")
    script = (f'mount -t tmpfs -o size=1m tmpfs "{mnt}" && {{ "{BIN}" test/diskfull2 --out "{mnt}/out" '
              f'--progress none & sleep 0.25; dd if=/dev/zero of="{mnt}/filler" bs=4k 2>/dev/null; wait $!; '
              f'echo "first=$?" >&2; rm -f "{mnt}/filler"; "{BIN}" test/diskfull2 --out "{mnt}/out" '
              f'--progress lines; echo "second=$?" >&2; cp "{mnt}/out/big.bin" "{saved}"; }}')
    p = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script], env=e.env(),
                       capture_output=True, timeout=RUN_TIMEOUT)
    err = p.stderr.decode()
    check("first=1" in err and "second=0" in err, f"disk full then rerun: {err[-400:]}")
    check("resuming big.bin" in err, f"the rerun did not resume: {err[-400:]}")
    with open(saved, "rb") as fp:
        check(fp.read() == expected("test/diskfull2", "big.bin"), "big.bin differs after the resumed download")


def test_permission_denied(e):
    """An output folder the user cannot write: a clear message naming the
    folder and what to do; after fixing the permissions a rerun completes."""
    as_user = []
    if os.geteuid() == 0:  # root writes anywhere: run weights-fetch as nobody
        if not shutil.which("setpriv"):
            raise Skip("running as root and setpriv(1) is missing, so no unprivileged run is possible")
        as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    os.chmod(e.tmp, 0o755)
    for d in ("home",):
        os.makedirs(os.path.join(e.tmp, d), exist_ok=True)
        os.chmod(os.path.join(e.tmp, d), 0o777)
    out = e.new_dir("perm")
    os.makedirs(out)
    os.chmod(out, 0o555)
    cmd = as_user + [BIN, "test/perm", "--out", out, "--progress", "lines"]
    p = subprocess.run(cmd, env=e.env(), capture_output=True, timeout=RUN_TIMEOUT)
    err = p.stderr.decode(errors="replace")
    check_clean(err)
    check(p.returncode == 1, f"exit status {p.returncode}, expected 1: {err[-300:]}")
    check("permission denied" in err.lower() and out in err, f"the message does not name the folder: {err[-300:]}")
    check("permissions" in err and "--out" in err, f"the message does not say what to do: {err[-300:]}")
    os.chmod(out, 0o777)
    p = subprocess.run(cmd, env=e.env(), capture_output=True, timeout=RUN_TIMEOUT)
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 0, f"rerun after fixing permissions: {p.returncode} {err[-300:]}")
    check_complete("test/perm", out)


def main():
    if not os.access(BIN, os.X_OK):
        print(f"FAIL weights_fetch_binary: {BIN} is missing; run make first")
        return 1
    e = Env()
    failed = 0
    t_start = time.time()
    try:
        happy_out = None
        cases = [
            ("happy_path_with_redirects", lambda: test_happy_path_with_redirects(e)),
            ("rerun_skips_complete_files", lambda: test_rerun_skips_complete_files(e, happy_out)),
            ("include_filter", lambda: test_include_filter(e)),
            ("token_from_file", lambda: test_token_from_file(e)),
            ("error_401_without_token", lambda: test_401_without_token(e)),
            ("error_401_bad_token", lambda: test_401_bad_token(e)),
            ("error_403_gated_repo", lambda: test_403_gated_repo(e)),
            ("error_404_repo_revision_file", lambda: test_404_repo_revision_file(e)),
            ("http_503_retried", lambda: test_503_retried(e)),
            ("dropped_connection_resumes_with_range", lambda: test_dropped_connection_resumes_with_range(e)),
            ("server_ignoring_range_restarts", lambda: test_server_ignoring_range_restarts(e)),
            ("corrupted_byte_refetched", lambda: test_corrupted_byte_refetched(e)),
            ("corruption_reported_after_retries", lambda: test_corruption_reported_after_retries(e)),
            ("interrupted_run_resumes", lambda: test_interrupted_run_resumes(e)),
            ("parallel_downloads_overlap", lambda: test_parallel_downloads_overlap(e)),
            ("large_file_in_pieces", lambda: test_large_file_in_pieces(e)),
            ("piece_dropped_resumes_within_piece", lambda: test_piece_dropped_resumes_within_piece(e)),
            ("pieces_fall_back_without_range_support", lambda: test_pieces_fall_back_without_range_support(e)),
            ("pieces_corruption_refetched", lambda: test_pieces_corruption_refetched(e)),
            ("pieces_interrupted_run_resumes", lambda: test_pieces_interrupted_run_resumes(e)),
            ("bad_server_answers", lambda: test_bad_server_answers(e)),
            ("usage_errors", lambda: test_usage_errors(e)),
            ("progress_bar_on_terminal", lambda: test_progress_bar_on_terminal(e)),
            ("disk_full", lambda: test_disk_full(e)),
            ("permission_denied", lambda: test_permission_denied(e)),
        ]
        for name, fn in cases:
            name = "weights_fetch_" + name
            t0 = time.time()
            try:
                result = fn()
                if name.endswith("happy_path_with_redirects"):
                    happy_out = result
                print(f"ok {name} ({time.time() - t0:.1f} s)", flush=True)
            except Skip as s:
                print(f"skip {name}: {s}", flush=True)
            except Failed as f_:
                failed += 1
                print(f"FAIL {name}: {f_}", flush=True)
            except Exception:  # a broken test or a timeout: report, go on
                failed += 1
                print(f"FAIL {name}: {traceback.format_exc().strip().splitlines()[-1]}", flush=True)
                traceback.print_exc()
    finally:
        e.close()
    print(f"# weights-fetch tests took {time.time() - t_start:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
