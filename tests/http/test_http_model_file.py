"""No silent death when the model file changes under a running CPU server
(issue 18). Truncating model.safetensors:
  - while idle: /health turns 503 naming the file, generation requests get
    503, one ERROR log line says what happened, SIGTERM still exits cleanly;
  - while a generation reads the weights: the read faults (SIGBUS), and the
    process leaves one CRITICAL log line naming the file and exits with
    status 75 (EX_TEMPFAIL) for the orchestrator to restart it."""
import json
import os
import shutil
import socket
import time

from http_fixture import SLOW, Results, Server, check, scratch_dir, tiny_model

EXIT_STATUS = 75


def model_copy(src):
    dst = os.path.join(scratch_dir(), "model")
    shutil.copytree(src, dst)
    return dst


def truncate_weights(model_dir):
    path = os.path.join(model_dir, "model.safetensors")
    with open(path, "r+b") as f:
        f.truncate(4096)
    return path


def idle_truncation(src):
    model = model_copy(src)
    srv = Server(model).wait_healthy()
    try:
        status, _, body = srv.json("POST", "/generate", {"prompt": "hi", "max_tokens": 2})
        check(status == 200, "before: %d %r" % (status, body))
        truncate_weights(model)
        status, _, body = srv.json("GET", "/health")
        check(status == 503 and body["status"] == "unhealthy", "health after truncation: %d %r" % (status, body))
        check("model.safetensors" in body.get("error", ""), "health error does not name the file: %r" % body)
        status, _, body = srv.json("POST", "/generate", {"prompt": "hi", "max_tokens": 2})
        check(status == 503 and "model.safetensors" in body["error"]["message"], "request: %d %r" % (status, body))
        lines = [l for l in srv.log_lines() if l.get("event") == "model_files_changed"]
        check(len(lines) == 1 and lines[0]["severity"] == "ERROR", "log lines: %r" % lines)
    finally:
        rc = srv.stop()
    check(rc == 0, "SIGTERM exit status %r" % rc)


def truncation_during_generation(src):
    model = model_copy(src)
    srv = Server(model, env={"MEDGEMMA_MAX_TOKENS": "8192"}, args=["--max-context", "8192"]).wait_healthy()
    try:
        body = json.dumps({"messages": [{"role": "user", "content": "Tell me everything."}], "max_tokens": 8000,
                           "stream": True}).encode()
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=30 * SLOW)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        first = sock.recv(4096)
        check(b"200" in first.split(b"\r\n")[0], "stream did not start: %r" % first[:200])
        truncate_weights(model)
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass
        sock.close()
        try:
            srv.proc.wait(60 * SLOW)
        except Exception:
            pass
        rc = srv.proc.poll()
        check(rc is not None, "the server still runs after its weights were truncated mid-generation")
        check(rc == EXIT_STATUS, "exit status %r, expected %d (a signal death is negative); log:\n%s"
              % (rc, EXIT_STATUS, srv.log_tail(5)))
        crit = [l for l in srv.log_lines() if l.get("severity") == "CRITICAL"]
        check(len(crit) == 1 and "model.safetensors" in crit[0]["message"] and "SIGBUS" in crit[0]["message"],
              "no CRITICAL line naming the file: %s" % srv.log_tail(5))
    finally:
        srv.kill()


def main():
    res = Results()
    src = tiny_model()
    res.case("model_file_truncated_idle_health_503_and_logged", idle_truncation, src)
    res.case("model_file_truncated_mid_generation_logged_exit_75", truncation_during_generation, src)
    res.finish()


if __name__ == "__main__":
    main()
