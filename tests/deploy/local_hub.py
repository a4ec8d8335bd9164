#!/usr/bin/env python3
"""Serves a real model directory as a gated Hugging Face repo on 127.0.0.1,
for the fetch-at-start test in test_container_env.py. It reuses the fake Hub
of tests/weights-fetch/fake_hub.py (its handlers and access rules) and only
replaces the generated file contents with the directory's files.

Usage: local_hub.py REPO DIR GRANTED_TOKEN LOG.jsonl -> prints "PORTS <hub> <cdn>"
and serves until killed. Large files (> 1 MiB) are served as LFS files (a
redirect to the second, "CDN" port), as the Hub does.
"""
import os
import sys
import threading
from http.server import ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "weights-fetch"))
import fake_hub  # noqa: E402


def main():
    repo, folder, token, log = sys.argv[1:5]
    files = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            files[name] = {"size": os.path.getsize(path), "lfs": os.path.getsize(path) > (1 << 20)}
    config = {"repos": {repo: {"commit": "c0ffee" * 6 + "c0ff", "gated": True, "granted": [token], "files": files}}}
    state = fake_hub.State(config, log)
    for name in files:
        with open(os.path.join(folder, name), "rb") as f:
            state.files[(repo, name)] = f.read()
    hub = ThreadingHTTPServer(("127.0.0.1", 0), fake_hub.make_handler(state, "hub"))
    cdn = ThreadingHTTPServer(("127.0.0.1", 0), fake_hub.make_handler(state, "cdn"))
    hub.daemon_threads = cdn.daemon_threads = True
    state.cdn_port = cdn.server_address[1]
    threading.Thread(target=cdn.serve_forever, daemon=True).start()
    print(f"PORTS {hub.server_address[1]} {cdn.server_address[1]}", flush=True)
    hub.serve_forever()


if __name__ == "__main__":
    main()
