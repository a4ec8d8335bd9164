"""Starts build/medgemma the way the container does, without Docker: the
runtime stage's ENTRYPOINT argv and ENV, plus the env vars deploy.sh sets on
Cloud Run, with a tiny synthetic model on the CPU backend, bound to loopback.
Checks that serve knows every env var the deployment relies on, that it
listens on $PORT (the ENTRYPOINT has no --port), that /health turns 200 once
the model is loaded, and that SIGTERM ends it with status 0 within Cloud Run's
10 s grace period.

Prints "ok NAME" / "FAIL NAME: why" / "skip NAME: why"; exits 1 on a failure.
"""
import http.client
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from dockerfile import ROOT, stages  # noqa: E402

BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
MEDGEMMA = os.path.join(BUILD, "medgemma")
failed = False


def report(name, problems, skip=None):
    global failed
    if skip:
        print(f"skip {name}: {skip}")
    elif problems:
        failed = True
        print(f"FAIL {name}: {'; '.join(problems)}")
    else:
        print(f"ok {name}")


_, STAGES = stages()
runtime = STAGES[-1]
image_env = {}
for word, rest in runtime["instrs"]:
    if word == "ENV":
        for item in shlex.split(rest):
            k, _, v = item.partition("=")
            image_env[k] = v
entry = [re.sub(r'^"|"$', "", x.strip()) for r in [rest for w, rest in runtime["instrs"] if w == "ENTRYPOINT"][-1:]
         for x in r.strip("[]").split(",")]

# The env vars deploy.sh puts on the service (from its dry run).
dry = subprocess.run(["bash", os.path.join(ROOT, "deploy.sh"), "--dry-run", "--tag", "t", "--api-key-secret", "k",
                      "proj-123"], capture_output=True, text=True)
m = re.search(r"--set-env-vars=(\S+)", dry.stdout)
deploy_env = dict(kv.split("=", 1) for kv in m.group(1).strip("'").split(",")) if m else {}

help_run = subprocess.run([MEDGEMMA, "serve", "--help"], capture_output=True, text=True) if os.path.exists(MEDGEMMA) else None
serve_missing = None
if help_run is None:
    serve_missing = f"{MEDGEMMA} is not built (run make)"
elif "not part of this build" in help_run.stderr or "unknown command" in help_run.stderr:
    serve_missing = "the serve command is not in this build yet (cli/cmd_serve.c)"

# ---- 1. serve documents every variable the image and deploy.sh set
if serve_missing:
    report("serve_knows_the_deployment_env", [], skip=serve_missing)
else:
    text = help_run.stdout + help_run.stderr
    names = [k for k in list(image_env) + list(deploy_env) + ["MEDGEMMA_API_KEY_FILE"]
             if k == "PORT" or k.startswith("MEDGEMMA_")]
    p = [] if names else ["no MEDGEMMA_* variables found in the Dockerfile or deploy.sh"]
    p += [f"'serve --help' does not mention {k}" for k in sorted(set(names)) if k not in text]
    if help_run.returncode != 0:
        p.append(f"'serve --help' exited {help_run.returncode}")
    report("serve_knows_the_deployment_env", p)


# ---- 2. the container's start, outside the container
def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def health(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", "/health")
        r = c.getresponse()
        r.read()
        c.close()
        return r.status
    except OSError:
        return None


def container_env(tmp, **overrides):
    """The image's ENV, then deploy.sh's, then the test's: loopback, CPU, a free PORT."""
    env = {"PATH": "/usr/bin:/bin", "HOME": tmp}
    env.update(image_env)
    env.update(deploy_env)
    env.pop("MEDGEMMA_API_KEY_FILE", None)
    env.update(PORT=str(free_port()), MEDGEMMA_HOST="127.0.0.1", MEDGEMMA_BACKEND="cpu")
    env.update(overrides)
    return env


def run_serve(tmp, env, p, want_healthy=True, wait_s=60):
    """Starts the ENTRYPOINT with env, waits for /health, stops it with SIGTERM.
    Appends problems to p; returns the server's output (stdout + stderr)."""
    port = int(env["PORT"])
    log = open(os.path.join(tmp, "serve.log"), "w+")
    proc = subprocess.Popen([MEDGEMMA] + entry[1:], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        status, deadline = None, time.time() + wait_s
        while time.time() < deadline and proc.poll() is None:
            status = health(port)
            if status == 200:
                break
            if status not in (None, 503):
                p.append(f"/health answered {status} while starting (want 503, then 200)")
                break
            time.sleep(0.2)
        if want_healthy:
            if proc.poll() is not None:
                p.append(f"serve exited with {proc.returncode} during start")
            elif status != 200:
                p.append(f"/health on $PORT={port} not 200 after {wait_s} s (last: {status})")
        elif status == 200:
            p.append("/health answered 200")
        if proc.poll() is None:
            t0 = time.time()
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=10)
                if rc != 0 and want_healthy:
                    p.append(f"exit status {rc} after SIGTERM, want 0")
            except subprocess.TimeoutExpired:
                p.append("still running 10 s after SIGTERM (Cloud Run would SIGKILL it)")
            else:
                if time.time() - t0 > 10:
                    p.append("took over 10 s to stop")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.seek(0)
        out = log.read()
        log.close()
    if p:
        p.append("log tail: " + " | ".join(out.splitlines()[-4:])[-400:])
    if '"backend":"fake"' in out.replace(" ", ""):
        # A developer's uncommitted stand-in for the engine: it loads nothing.
        raise FakeBackend()
    return out


class FakeBackend(Exception):
    pass


FAKE_WHY = "serve in this build runs a dev-only fake backend that loads no model (work in progress)"


def synth_model(tmp, p):
    model = os.path.join(tmp, "model")
    r = subprocess.run([MEDGEMMA, "synth-model", "--preset", "tiny", "--out", model], capture_output=True, text=True)
    if r.returncode != 0:
        p.append(f"synth-model failed: {r.stderr.strip()[-200:]}")
    return model


if serve_missing:
    report("container_start_port_health_sigterm", [], skip=serve_missing)
elif not entry or entry[0] != "/usr/local/bin/medgemma":
    report("container_start_port_health_sigterm", [f"unexpected ENTRYPOINT {entry}"])
else:
    p = []
    with tempfile.TemporaryDirectory() as tmp:
        model = synth_model(tmp, p)
        try:
            run_serve(tmp, container_env(tmp, MEDGEMMA_MODEL_DIR=model), p)
            report("container_start_port_health_sigterm", p)
        except FakeBackend:
            report("container_start_port_health_sigterm", [], skip=FAKE_WHY)


# ---- 2a. the extremes of deploy.sh's options give env values serve accepts
def deploy_env_for(*args):
    r = subprocess.run(["bash", os.path.join(ROOT, "deploy.sh"), "--dry-run", "--tag", "t", *args, "proj-123"],
                       capture_output=True, text=True)
    m = re.search(r"--set-env-vars=(\S+)", r.stdout)
    return dict(kv.split("=", 1) for kv in m.group(1).strip("'").split(",")) if m else None


if serve_missing:
    report("serve_accepts_deploy_sh_extremes", [], skip=serve_missing)
else:
    p = []
    with tempfile.TemporaryDirectory() as tmp:
        model = synth_model(tmp, p)
        for args in (("--max-queue", "1", "--timeout", "20"), ("--max-queue", "999", "--timeout", "3600")):
            env = deploy_env_for(*args)
            if env is None:
                p.append(f"deploy.sh {' '.join(args)} printed no --set-env-vars")
                continue
            q = []
            try:
                # The numbers deploy.sh chose; the CPU backend and the test model as elsewhere.
                env.update(MEDGEMMA_BACKEND="cpu", MEDGEMMA_MODEL_DIR=model)
                run_serve(tmp, container_env(tmp, **env), q, wait_s=30)
            except FakeBackend:
                q = []
            p += [f"deploy.sh {' '.join(args)}: {x}" for x in q]
    report("serve_accepts_deploy_sh_extremes", p)


# ---- 2b. deploy.sh sets MEDGEMMA_BACKEND=cuda: without a usable GPU the instance must not
# report healthy (a silent CPU fallback would serve a 4B model at CPU speed), and must say why.
if serve_missing:
    report("cuda_backend_without_gpu_is_not_healthy", [], skip=serve_missing)
elif os.path.exists("/dev/nvidia0"):
    report("cuda_backend_without_gpu_is_not_healthy", [], skip="this machine has a GPU")
else:
    p = []
    with tempfile.TemporaryDirectory() as tmp:
        model = synth_model(tmp, p)
        try:
            out = run_serve(tmp, container_env(tmp, MEDGEMMA_MODEL_DIR=model, MEDGEMMA_BACKEND="cuda"), p,
                            want_healthy=False, wait_s=15)
            if not re.search(r"cuda|gpu", out, re.I):
                p.append("the output does not mention CUDA or the GPU: " + " | ".join(out.splitlines()[-3:])[-300:])
            report("cuda_backend_without_gpu_is_not_healthy", p)
        except FakeBackend:
            report("cuda_backend_without_gpu_is_not_healthy", [], skip=FAKE_WHY)


# ---- 3. weights fetched at start from a (local, gated) Hub, as on Cloud Run with --weights fetch
def start_hub(tmp, repo, folder, token):
    hub = subprocess.Popen([sys.executable, os.path.join(HERE, "local_hub.py"), repo, folder, token,
                            os.path.join(tmp, "hub.log")], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    ready, _, _ = select.select([hub.stdout], [], [], 10)
    line = hub.stdout.readline().decode() if ready else ""
    if not line.startswith("PORTS "):
        hub.kill()
        hub.wait()
        return None, None
    return hub, f"http://127.0.0.1:{line.split()[1]}"


GRANTED = "hf_good_deploy_test_token"


def fetch_with_access(tmp, src, endpoint):
    p = []
    dest = os.path.join(tmp, "models", "medgemma")
    os.makedirs(dest)  # the image ships this dir empty, owned by the service user
    env = container_env(tmp, MEDGEMMA_MODEL_DIR=dest, HF_TOKEN=GRANTED, HF_ENDPOINT=endpoint, NO_PROXY="127.0.0.1")
    out = run_serve(tmp, env, p)
    for name in os.listdir(src):
        got = os.path.join(dest, name)
        if not os.path.exists(got) or os.path.getsize(got) != os.path.getsize(os.path.join(src, name)):
            p.append(f"{name} not downloaded into MEDGEMMA_MODEL_DIR")
    if GRANTED in out:
        p.append("the token appears in the server's output")
    return p


def fetch_without_access(tmp, endpoint):
    p = []
    dest = os.path.join(tmp, "models", "no-access")
    os.makedirs(dest)
    other = "hf_good_but_not_granted"
    env = container_env(tmp, MEDGEMMA_MODEL_DIR=dest, HF_TOKEN=other, HF_ENDPOINT=endpoint, NO_PROXY="127.0.0.1")
    out = run_serve(tmp, env, p, want_healthy=False, wait_s=15)
    if not re.search(r"gated|access|terms|403", out, re.I):
        p.append("the output does not say the model is gated / access is missing: "
                 + " | ".join(out.splitlines()[-3:])[-300:])
    if other in out:
        p.append("the token appears in the server's output")
    return p


FETCH_TESTS = (("fetch_at_start_from_gated_hub", fetch_with_access),
               ("fetch_at_start_without_access_says_why", lambda tmp, src, endpoint: fetch_without_access(tmp, endpoint)))
if serve_missing:
    for name, _ in FETCH_TESTS:
        report(name, [], skip=serve_missing)
else:
    with tempfile.TemporaryDirectory() as tmp:
        p = []
        src = synth_model(tmp, p)
        repo = deploy_env.get("MEDGEMMA_MODEL_REPO", "google/medgemma-1.5-4b-it")
        hub, endpoint = start_hub(tmp, repo, src, GRANTED) if not p else (None, None)
        try:
            for name, fn in FETCH_TESTS:
                if hub is None:
                    report(name, p or ["the local hub (tests/deploy/local_hub.py) did not start"])
                    continue
                try:
                    report(name, fn(tmp, src, endpoint))
                except FakeBackend:
                    report(name, [], skip=FAKE_WHY)
        finally:
            if hub is not None:
                hub.kill()
                hub.wait()

if not deploy_env:
    report("deploy_env_parsed", ["no --set-env-vars in deploy.sh --dry-run output"])

sys.exit(1 if failed else 0)
