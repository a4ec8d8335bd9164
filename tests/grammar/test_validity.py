#!/usr/bin/env python3
"""Constrained answers always parse and validate: every schema of
tests/grammar/schemas/ through engine_generate (build/grammar-tool generate)
on two models that would not write such JSON on their own:

  - a random-weight synth model (`medgemma synth-model --preset tiny`, the
    real 262,208-row vocabulary), and
  - the real Gemma 3 270M ($MEDGEMMA_CACHE/gemma3-270m, made by `make models`),

greedy and sampled with several seeds. Every complete answer (the matcher
accepted <end_of_turn>) must parse with json.loads and validate with PyPI
jsonschema (Draft 2020-12; "format" is an annotation there, see
grammar/README.md). Answers cut by max_tokens are counted, not validated.

GRAMMAR_VALIDITY_FULL=1 runs the full matrix (greedy + 3 seeds on both models,
longer budgets) and writes the counts to
bench/grammar/results/validity-<commit>.json; the default run (make test) is a
smaller matrix: greedy + 1 seed on the synth model, greedy on the 270M.
"""
import json
import os
import subprocess
import sys
import tempfile

import jsonschema

ROOT = os.environ.get("REPO_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD", "build")
CACHE = os.environ.get("MEDGEMMA_CACHE") or os.path.expanduser("~/.cache/medgemma-engine")
FULL = os.environ.get("GRAMMAR_VALIDITY_FULL") == "1"
TOOL = os.path.join(ROOT, BUILD, "grammar-tool")
MEDGEMMA = os.path.join(ROOT, BUILD, "medgemma")

PROMPTS = {
    "box_2d": "Locate the heart in this chest X-ray. Give its bounding box and label as JSON.",
    "cxr_findings": "Summarize the findings of a chest X-ray with a small right pleural effusion as JSON.",
    "ct_report": "Write a structured CT abdomen report as JSON.",
}


def schemas():
    d = os.path.join(ROOT, "tests", "grammar", "schemas")
    for name in sorted(os.listdir(d)):
        if name.endswith(".json"):
            yield name[:-5], json.load(open(os.path.join(d, name)))


def run_jobs(model_dir, jobs):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(jobs, f)
        path = f.name
    try:
        r = subprocess.run([TOOL, "generate", model_dir, path], capture_output=True, text=True, timeout=3600)
    finally:
        os.unlink(path)
    if r.returncode != 0:
        raise RuntimeError("grammar-tool generate failed: " + r.stderr.strip()[-300:])
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def check_model(label, model_dir, seeds, max_tokens, names_schemas):
    jobs, meta = [], []
    for name, schema in names_schemas:
        prompt = PROMPTS.get(name, "Answer with a JSON value for the schema '%s'." % name)
        for seed in seeds:
            jobs.append({"schema": schema, "prompt": prompt, "temperature": 0.0 if seed is None else 1.0,
                         "seed": seed or 0, "max_tokens": max_tokens})
            meta.append((name, schema, seed))
    results = run_jobs(model_dir, jobs)
    counts = {"jobs": len(jobs), "complete": 0, "valid": 0, "incomplete": 0, "errors": 0}
    failures = []
    for (name, schema, seed), res in zip(meta, results):
        mode = "greedy" if seed is None else "seed %d" % seed
        if "error" in res:
            counts["errors"] += 1
            failures.append("%s %s: %s" % (name, mode, res["error"]))
            continue
        if not res["complete"]:
            counts["incomplete"] += 1
            continue
        counts["complete"] += 1
        try:
            value = json.loads(res["text"])
            jsonschema.Draft202012Validator(schema).validate(value)
            counts["valid"] += 1
        except Exception as e:  # json or schema error
            failures.append("%s %s: %s: %r" % (name, mode, str(e).splitlines()[0][:160], res["text"][:200]))
    if len(results) != len(jobs):
        failures.append("%d of %d jobs answered" % (len(results), len(jobs)))
    ok = not failures and counts["complete"] > 0
    detail = "%d jobs, %d complete, %d valid, %d cut by max_tokens" % (
        counts["jobs"], counts["complete"], counts["valid"], counts["incomplete"])
    if ok:
        print("ok grammar_validity_%s (%s)" % (label, detail))
    else:
        print("FAIL grammar_validity_%s: %s; %s" % (label, detail, "; ".join(failures[:5]) or "no complete answer"))
    return ok, counts


def main():
    all_schemas = list(schemas())
    results = {}
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        synth = os.path.join(tmp, "synth-tiny")
        r = subprocess.run([MEDGEMMA, "synth-model", "--preset", "tiny", "--out", synth], capture_output=True,
                           text=True)
        if r.returncode != 0:
            print("FAIL grammar_validity_synth: synth-model failed: " + r.stderr.strip()[-200:])
            failed = True
        else:
            seeds = [None, 1, 2, 3] if FULL else [None, 1]
            ok, results["synth-tiny"] = check_model("synth", synth, seeds, 160 if FULL else 96, all_schemas)
            failed |= not ok
    real = os.path.join(CACHE, "gemma3-270m")
    if not os.path.exists(os.path.join(real, ".complete")):
        print("skip grammar_validity_270m: the Gemma 3 270M is not in %s (run `make models`)" % real)
    else:
        seeds = [None, 1, 2, 3] if FULL else [None]
        ok, results["gemma3-270m"] = check_model("270m", real, seeds, 128 if FULL else 48, all_schemas)
        failed |= not ok
    if FULL:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=ROOT).stdout.strip()
        out = os.path.join(ROOT, "bench", "grammar", "results", "validity-%s.json" % commit)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            json.dump({"commit": commit, "schemas": len(all_schemas), "results": results}, f, indent=1)
            f.write("\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
