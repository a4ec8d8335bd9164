"""Reads the Dockerfile into stages, for the tests in tests/deploy/.

A deliberately small parser: continuation lines joined, comments dropped,
global ARG defaults substituted into FROM. Enough for this project's
Dockerfile; not a general one.
"""
import os
import re

ROOT = os.environ.get("REPO_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def parse_dockerfile(path):
    """[(INSTRUCTION, rest-of-line)] with continuations joined."""
    instrs, buf = [], ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if line.strip().startswith("#") or (not buf and not line.strip()):
                continue
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            buf += line
            word, _, rest = buf.strip().partition(" ")
            instrs.append((word.upper(), rest.strip()))
            buf = ""
    return instrs


def stages(path=os.path.join(ROOT, "Dockerfile")):
    """(global ARG defaults, [{"name", "base", "instrs"}])."""
    global_args, out = {}, []
    for word, rest in parse_dockerfile(path):
        if word == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", rest, re.I)
            base = re.sub(r"\$\{(\w+)\}", lambda v: global_args.get(v.group(1), v.group(0)), m.group(1))
            out.append({"name": m.group(2), "base": base, "instrs": []})
        elif not out and word == "ARG":
            k, _, v = rest.partition("=")
            global_args[k] = v
        else:
            out[-1]["instrs"].append((word, rest))
    return global_args, out


def runs(stage):
    return [rest for word, rest in stage["instrs"] if word == "RUN"]


def apt_packages(stage):
    pkgs = []
    for cmd in runs(stage):
        m = re.search(r"apt-get install (.*?)(?:&&|$)", cmd)
        if m:
            pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
    return pkgs
