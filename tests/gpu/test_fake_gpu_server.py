"""The real server on a (fake) GPU: build/medgemma-fakegpu is build/medgemma with
the CUDA backend's host code linked against tests/gpu/fake/ (a device in host
memory, faults injected through FAKE_CUDA_* variables). Checks what an operator
sees: `auto` falling back to the CPU while a GPU is there says so at ERROR and
in /health; `--backend cuda` (deploy.sh's MEDGEMMA_BACKEND=cuda) never falls
back and stops with the reason; a request that runs out of device memory gets a
503 and the next one works; an unrecoverable (sticky) CUDA error fails its
request with a plain 500, turns /health into 503 "unhealthy" and is logged once; a follow-up
turn continues the cached prefix on the CUDA backend (/metrics counts the reused tokens)."""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "http"))
import http_fixture  # noqa: E402
from http_fixture import Results, Server, check, scratch_dir, tiny_model  # noqa: E402

http_fixture.BINARY = os.path.join(http_fixture.REPO, http_fixture.BUILD, "medgemma-fakegpu")
TOO_SMALL = {"FAKE_CUDA_MEMORY_MB": "1"}  # the tiny model's plan is ~5 MiB + 256 MiB headroom


def health(srv):
    return srv.json("GET", "/health")


def errors_logged(srv, needle):
    return [l for l in srv.log_lines() if l.get("severity") == "ERROR" and needle in l.get("message", "")]


def generate(srv, max_tokens=3):
    return srv.json("POST", "/generate", {"prompt": "Describe the finding.", "max_tokens": max_tokens})


def run_until_exit(model, env, args=(), timeout=120):
    e = dict(os.environ)
    e.update(env)
    e["MEDGEMMA_THREADS"] = "1"
    r = subprocess.run([http_fixture.BINARY, "serve", "--model", model, "--host", "127.0.0.1", "--port", "0"]
                       + list(args), capture_output=True, text=True, env=e, timeout=timeout * http_fixture.SLOW)
    lines = []
    for line in r.stdout.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            lines.append({"raw": line})
    return r.returncode, lines


def main():
    res = Results()
    if not os.path.exists(http_fixture.BINARY):
        res.skip("fake_gpu_server", "%s is not built (make builds it)" % http_fixture.BINARY)
        res.finish()
    model = tiny_model()

    def auto_uses_the_gpu():
        srv = Server(model).wait_healthy()
        try:
            status, _, b = health(srv)
            check(status == 200 and b["backend"] == "cuda" and b["gpu_available"] is True, "%r" % b)
            check(b["gpu_name"].startswith("fake GPU") and "fallback_reason" not in b, "%r" % b)
            status, _, g = generate(srv)
            check(status == 200, "generate %d %r" % (status, g))
        finally:
            srv.stop()

    def auto_fallback_is_loud():
        srv = Server(model, env=TOO_SMALL).wait_healthy()
        try:
            status, _, b = health(srv)
            check(status == 200 and b["status"] == "healthy", "%r" % b)
            check(b["backend"] == "cpu" and b["gpu_available"] is True and b["gpu_name"] is None, "%r" % b)
            check("the model needs" in b.get("fallback_reason", ""), "fallback_reason %r" % b)
            logged = errors_logged(srv, "a GPU is present but the CUDA backend failed")
            check(len(logged) == 1 and "serving on the CPU" in logged[0]["message"], "ERROR lines %r" % logged)
            status, _, g = generate(srv)
            check(status == 200, "generate on the CPU %d %r" % (status, g))
        finally:
            srv.stop()

    def auto_without_gpu_is_quiet():
        srv = Server(model, env={"FAKE_CUDA_DEVICES": "0"}).wait_healthy()
        try:
            status, _, b = health(srv)
            check(status == 200 and b["backend"] == "cpu" and b["gpu_available"] is False, "%r" % b)
            check("fallback_reason" not in b, "%r" % b)
            check(not [l for l in srv.log_lines() if l.get("severity") == "ERROR"], "an ERROR line without a GPU")
        finally:
            srv.stop()

    def cuda_never_falls_back(env, reason):
        rc, lines = run_until_exit(model, dict(env, MEDGEMMA_BACKEND="cuda"))
        check(rc == 1, "exit status %d (want 1); log %r" % (rc, lines[-3:]))
        failed = [l for l in lines if l.get("severity") == "ERROR" and l.get("message", "").startswith("cannot serve")]
        check(failed and "no fallback to the CPU" in failed[0]["message"] and reason in failed[0]["message"],
              "no 'cannot serve' line naming the reason: %r" % lines[-3:])
        check(lines[-1].get("message") == "stopped" and lines[-1].get("exit_status") == 1,
              "last line %r" % lines[-1])
        check(not any("model ready" == l.get("message") for l in lines), "it served")

    def out_of_memory_then_next_works(srv, fault):
        with open(fault, "w") as f:
            f.write("memory_allocation\n")
        status, hdrs, b = generate(srv)
        check(status == 503 and b["error"]["type"] == "unavailable", "%d %r" % (status, b))
        check("no free memory" in b["error"]["message"], "%r" % b)
        check(not os.path.exists(fault), "the fault was not consumed")
        status, _, h = health(srv)
        check(status == 200 and h["status"] == "healthy", "health after an OOM %d %r" % (status, h))
        status, _, g = generate(srv)
        check(status == 200, "the next request: %d %r" % (status, g))

    def sticky_error_turns_unhealthy(srv, fault):
        with open(fault, "w") as f:
            f.write("illegal_address\n")
        status, _, b = generate(srv)
        check(status == 500 and b["error"]["type"] == "server_error", "%d %r" % (status, b))
        msg = b["error"]["message"]
        check("GPU failed" in msg and ".c:" not in msg and "cuda" not in msg.lower(), "not plain: %r" % msg)
        status, _, h = health(srv)
        check(status == 503 and h["status"] == "unhealthy", "health %d %r" % (status, h))
        check("illegal memory access" in h.get("error", ""), "health error %r" % h)
        check(h["backend"] == "cuda" and h["model_loaded"] is False, "%r" % h)
        for _ in range(2):
            status, _, b = generate(srv)
            check(status == 503 and b["error"]["type"] == "unavailable", "later request %d %r" % (status, b))
        time.sleep(0.2)
        logged = errors_logged(srv, "the GPU failed")
        check(len(logged) == 1 and "unhealthy" in logged[0]["message"], "want one ERROR line, got %r" % logged)

    def follow_up_reuses_the_prefix_on_the_gpu():
        srv = Server(model, env={"MEDGEMMA_BACKEND": "cuda"}, args=["--max-context", "2048"]).wait_healthy()

        def metric(name):
            status, _, body = srv.request("GET", "/metrics")
            check(status == 200, "/metrics -> %d" % status)
            m = re.search(r"^%s (\d+)$" % re.escape(name), body.decode(), re.M)
            check(m is not None, "%s missing from /metrics" % name)
            return int(m.group(1))

        def chat(messages):
            status, _, r = srv.json("POST", "/v1/chat/completions",
                                    {"model": "tiny", "messages": messages, "max_tokens": 4, "temperature": 0},
                                    timeout=120)
            check(status == 200, "chat -> %d %r" % (status, r))
            return r

        try:
            long = " ".join("Finding %d: a small nodule in segment %d, unchanged." % (i, i % 8) for i in range(40))
            turn1 = [{"role": "system", "content": "You are a radiologist. " + long},
                     {"role": "user", "content": "Summarize the findings."}]
            r1 = chat(turn1)
            check(metric("medgemma_prefix_cache_enabled") == 1, "the CUDA backend's prefix cache is off")
            turn2 = turn1 + [{"role": "assistant", "content": r1["choices"][0]["message"]["content"]},
                             {"role": "user", "content": "Any change?"}]
            reused0 = metric("medgemma_prefix_cache_reused_tokens_total")
            r2 = chat(turn2)
            cached = r2["usage"]["prompt_tokens_details"]["cached_tokens"]
            check(cached >= 256, "turn 2 reused %d tokens on the GPU" % cached)
            check(metric("medgemma_prefix_cache_reused_tokens_total") == reused0 + cached, "metric disagrees")
        finally:
            srv.stop()

    def faults():
        fault = os.path.join(scratch_dir(), "fault")
        srv = Server(model, env={"FAKE_CUDA_FAULT_FILE": fault, "MEDGEMMA_BACKEND": "cuda"}).wait_healthy()
        try:
            res.case("fake_gpu_out_of_memory_request_503_then_next_works", out_of_memory_then_next_works, srv, fault)
            res.case("fake_gpu_sticky_error_500_then_unhealthy_logged_once", sticky_error_turns_unhealthy, srv,
                     fault)
            logs = json.dumps(srv.log_lines())
            check("Describe the finding" not in logs, "the prompt reached the log")
        finally:
            srv.stop()

    res.case("fake_gpu_auto_serves_on_the_gpu", auto_uses_the_gpu)
    res.case("fake_gpu_auto_fallback_logged_and_in_health", auto_fallback_is_loud)
    res.case("fake_gpu_auto_without_gpu_no_fallback_reported", auto_without_gpu_is_quiet)
    res.case("fake_gpu_backend_cuda_model_too_big_stops", cuda_never_falls_back, TOO_SMALL, "the model needs")
    res.case("fake_gpu_backend_cuda_no_device_stops", cuda_never_falls_back, {"FAKE_CUDA_DEVICES": "0"},
             "no CUDA device")
    res.case("fake_gpu_faults_no_prompt_in_log", faults)
    res.case("fake_gpu_follow_up_reuses_the_prefix_in_metrics", follow_up_reuses_the_prefix_on_the_gpu)
    res.finish()


if __name__ == "__main__":
    main()
