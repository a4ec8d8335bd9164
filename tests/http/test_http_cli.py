"""`medgemma serve` on the command line: --help lists every setting with its
environment variable; bad settings, a model dir with nothing in it (and no
token) and a busy port each end with a message and a non-zero status, never
a signal."""
import os
import socket
import subprocess

from http_fixture import BINARY, Results, check, scratch_dir

ENV_VARS = ["PORT", "MEDGEMMA_HOST", "MEDGEMMA_MODEL_DIR", "MEDGEMMA_BACKEND", "MEDGEMMA_API_KEY",
            "MEDGEMMA_API_KEY_FILE", "MEDGEMMA_MAX_QUEUE", "MEDGEMMA_MAX_IMAGES", "MEDGEMMA_MAX_BODY_MB",
            "MEDGEMMA_MAX_TOKENS", "MEDGEMMA_REQUEST_TIMEOUT_S", "MEDGEMMA_MODEL_REPO", "MEDGEMMA_SHUTDOWN_GRACE_S",
            "MEDGEMMA_LOG_LEVEL", "HF_TOKEN"]


def serve(args, env=None, timeout=60):
    e = {k: v for k, v in os.environ.items() if not k.startswith("MEDGEMMA_") and not k.startswith("HF_")}
    e["HF_HOME"] = scratch_dir()  # no token file either
    e.update(env or {})
    return subprocess.run([BINARY, "serve"] + args, capture_output=True, text=True, timeout=timeout, env=e)


def main():
    res = Results()

    def help_lists_env():
        r = serve(["--help"])
        check(r.returncode == 0, "--help exit %d" % r.returncode)
        missing = [v for v in ENV_VARS if v not in r.stdout]
        check(not missing, "--help does not mention %r" % missing)

    def usage_errors():
        for args, needle in [([], "--model"), (["--model", "/tmp", "--port", "http"], "--port"),
                             (["--model", "/tmp", "--backend", "tpu"], "--backend"),
                             (["--model", "/tmp", "--max-queue", "-1"], "MEDGEMMA_MAX_QUEUE"),
                             (["--model", "/tmp", "--bogus"], "--bogus")]:
            r = serve(args)
            check(r.returncode == 2, "%r: exit %d" % (args, r.returncode))
            check(needle in r.stderr, "%r: stderr does not name %s: %r" % (args, needle, r.stderr))
        r = serve(["--model", "/tmp"], env={"MEDGEMMA_MAX_BODY_MB": "lots"})
        check(r.returncode == 2 and "MEDGEMMA_MAX_BODY_MB" in r.stderr, "env value: %d %r" % (r.returncode, r.stderr))

    def empty_model_dir():
        d = scratch_dir()
        r = serve(["--model", d, "--host", "127.0.0.1", "--port", "0"])
        check(r.returncode == 1, "exit %d (want 1)" % r.returncode)
        out = r.stdout + r.stderr
        check("config.json" in out and "HF_TOKEN" in out, "the message does not say what to do: %r" % out[-500:])

    def busy_port():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        try:
            r = serve(["--model", scratch_dir(), "--host", "127.0.0.1", "--port", str(s.getsockname()[1])])
        finally:
            s.close()
        check(r.returncode == 1 and "cannot listen" in r.stdout, "exit %d %r" % (r.returncode, r.stdout[-300:]))

    res.case("serve_help_lists_every_env_var", help_lists_env)
    res.case("serve_usage_errors_exit_2", usage_errors)
    res.case("serve_empty_model_dir_without_token_says_what_to_do", empty_model_dir)
    res.case("serve_busy_port_exit_1", busy_port)
    res.finish()


if __name__ == "__main__":
    main()
