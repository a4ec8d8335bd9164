"""SIGTERM drains gracefully: the running request finishes within the grace
period and gets its answer, new connections are refused, the process exits 0;
past the grace period the running request is stopped with a 503."""
import json
import signal
import socket
import threading
import time

from http_fixture import SLOW, Results, Server, check, tiny_model


def post_in_thread(srv, body, out):
    def run():
        try:
            out.append(srv.json("POST", "/generate", body, timeout=120))
        except Exception as e:  # reported by the test
            out.append(("exception", {}, repr(e)))
    t = threading.Thread(target=run)
    t.start()
    return t


def wait_running(srv):
    deadline = time.time() + 10 * SLOW
    while time.time() < deadline:
        if srv.json("GET", "/health")[2]["running"] == 1:
            return
        time.sleep(0.01)
    raise AssertionError("the request never started")


def main():
    res = Results()
    model = tiny_model()

    def drain_finishes_running():
        srv = Server(model, env={"MEDGEMMA_SHUTDOWN_GRACE_S": str(30 * SLOW)}, args=["--max-context", "1024"])
        srv.wait_healthy()
        out = []
        t = post_in_thread(srv, {"prompt": "x", "max_tokens": 120}, out)
        wait_running(srv)
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        refused = False
        try:
            socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
        except OSError:
            refused = True
        t.join(60 * SLOW)
        status, _, body = out[0]
        check(status == 200 and body["usage"]["completion_tokens"] == 120,
              "the running request was not finished: %r %r" % (status, body))
        check(refused, "new connections were still accepted while draining")
        rc = srv.stop()
        check(rc == 0, "exit status %r; log:\n%s" % (rc, srv.log_tail()))

    def grace_passed_stops_running():
        srv = Server(model, env={"MEDGEMMA_SHUTDOWN_GRACE_S": "0.3", "MEDGEMMA_MAX_TOKENS": "4000"},
                     args=["--max-context", "4096"]).wait_healthy()
        out = []
        t = post_in_thread(srv, {"prompt": "x", "max_tokens": 4000}, out)
        wait_running(srv)
        t0 = time.time()
        srv.proc.send_signal(signal.SIGTERM)
        t.join(60 * SLOW)
        status, _, body = out[0]
        check(status == 503 and body["error"]["type"] == "unavailable", "%r %r" % (status, body))
        rc = srv.stop()
        check(rc == 0 and time.time() - t0 < 5 * SLOW, "exit status %r after %.1f s" % (rc, time.time() - t0))

    res.case("sigterm_drain_finishes_running_request", drain_finishes_running)
    res.case("sigterm_after_grace_stops_running_request", grace_passed_stops_running)
    res.finish()


if __name__ == "__main__":
    main()
