"""A client that disconnects stops its generation: running (plain HTTP/1,
streamed) or still queued. The engine is free for the next request within
about one token, and the per-request deadline stops a long generation."""
import json
import socket
import subprocess
import time

from http_fixture import SLOW, Results, Server, check, tiny_model

LONG = 3000  # tokens: tens of seconds on the tiny model if nothing stopped it


def raw_post(port, path, body):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    data = json.dumps(body).encode()
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
              % (path.encode(), len(data)) + data)
    return s


def request_lines(srv, rid):
    return [l for l in srv.log_lines() if l.get("message") == "request" and l.get("request_id") == rid]


def wait_log(srv, rid, timeout=30):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        lines = request_lines(srv, rid)
        if lines:
            return lines[-1]
        time.sleep(0.05)
    raise AssertionError("no log line for %s; log:\n%s" % (rid, srv.log_tail()))


def per_token_ms(srv):
    status, _, b = srv.json("POST", "/generate", {"prompt": "x", "max_tokens": 40},
                            {"X-Request-Id": "calibrate"})
    check(status == 200, "calibration: %r" % b)
    line = wait_log(srv, "calibrate")
    return line["engine_ms"] / max(1, line["completion_tokens"])


def next_request_fast(srv, budget_ms, what):
    """The engine is free: a new request waits no longer than budget_ms."""
    status, _, b = srv.json("POST", "/generate", {"prompt": "next", "max_tokens": 1}, {"X-Request-Id": what + "-next"})
    check(status == 200, "%s: next request %d %r" % (what, status, b))
    line = wait_log(srv, what + "-next")
    check(line["queue_ms"] <= budget_ms, "%s: the next request waited %.0f ms (budget %.0f ms)"
          % (what, line["queue_ms"], budget_ms))


def main():
    res = Results()
    model = tiny_model()
    srv = Server(model, env={"MEDGEMMA_MAX_TOKENS": str(LONG)}, args=["--max-context", "4096"]).wait_healthy()
    tok_ms = per_token_ms(srv)
    print("# %.2f ms per token" % tok_ms)
    # One token of the cancelled request, the loop's 10 ms check, and scheduling slack on shared cores.
    budget = (3 * tok_ms + 150) * SLOW

    def plain_http1():
        s = raw_post(srv.port, "/generate", {"prompt": "long", "max_tokens": LONG})
        s.sendall(b"")
        time.sleep(0.4 * SLOW)
        # Make sure it is running, then hang up.
        s.close()
        next_request_fast(srv, budget + 400 * SLOW, "plain")
        # (the first request's own log line says how far it got)
        lines = [l for l in srv.log_lines() if l.get("message") == "request" and l.get("endpoint") == "generate"
                 and l.get("status") == 499]
        check(lines, "no 499 log line for the abandoned request")
        check(lines[-1]["completion_tokens"] < LONG, "the abandoned request ran to the end")

    def streamed():
        s = raw_post(srv.port, "/v1/chat/completions",
                     {"messages": [{"role": "user", "content": "long"}], "max_tokens": LONG, "stream": True})
        s.settimeout(30 * SLOW)
        got = b""
        while got.count(b"data: ") < 3:  # role chunk + two content chunks: it is generating
            part = s.recv(65536)
            check(part, "stream ended early: %r" % got[-300:])
            got += part
        s.close()
        t_close = time.time()
        next_request_fast(srv, budget, "stream")
        check(time.time() - t_close < 5 * SLOW, "next request took too long")

    def http2_stream():
        # curl over cleartext HTTP/2; killing it closes the connection, h2o
        # disposes the stream and the request's pool tells the server.
        p = subprocess.Popen(["curl", "-s", "-N", "--http2-prior-knowledge", "-d",
                              json.dumps({"messages": [{"role": "user", "content": "long"}], "max_tokens": LONG,
                                          "stream": True}), srv.url() + "/v1/chat/completions"],
                             stdout=subprocess.PIPE)
        try:
            for _ in range(3):  # role chunk + content: it is generating
                check(p.stdout.readline(), "the HTTP/2 stream ended early")
                p.stdout.readline()  # the blank line after each event
        finally:
            p.kill()
            p.wait()
        next_request_fast(srv, budget, "h2")

    def queued():
        a = raw_post(srv.port, "/generate", {"prompt": "long", "max_tokens": LONG})
        time.sleep(0.2 * SLOW)
        b = raw_post(srv.port, "/generate", {"prompt": "queued", "max_tokens": 2})
        time.sleep(0.2 * SLOW)
        _, _, h = srv.json("GET", "/health")
        check(h["queue_depth"] == 1 and h["running"] == 1, "expected one running, one queued: %r" % h)
        b.close()
        deadline = time.time() + 5 * SLOW
        while time.time() < deadline:
            _, _, h = srv.json("GET", "/health")
            if h["queue_depth"] == 0:
                break
            time.sleep(0.02)
        check(h["queue_depth"] == 0 and h["running"] == 1, "queued request not removed: %r" % h)
        check(any(l.get("message") == "request cancelled while queued" for l in srv.log_lines()),
              "no log line for the queued cancellation")
        a.close()
        next_request_fast(srv, budget + 400 * SLOW, "queued")

    def deadline():
        d = Server(model, env={"MEDGEMMA_REQUEST_TIMEOUT_S": "1", "MEDGEMMA_MAX_TOKENS": str(LONG)},
                   args=["--max-context", "4096"]).wait_healthy()
        try:
            t0 = time.time()
            status, _, b = d.json("POST", "/generate", {"prompt": "long", "max_tokens": LONG})
            took = time.time() - t0
            check(status == 504 and b["error"]["type"] == "timeout", "deadline: %d %r" % (status, b))
            check(took < 1 + 3 * SLOW, "the deadline answer came after %.1f s" % took)
        finally:
            check(d.stop() == 0, "exit status after SIGTERM")

    res.case("disconnect_running_http1_frees_engine", plain_http1)
    res.case("disconnect_streaming_frees_engine", streamed)
    res.case("disconnect_http2_stream_frees_engine", http2_stream)
    res.case("disconnect_queued_request_removed", queued)
    res.case("request_deadline_504", deadline)

    def metrics_count_cancellations():
        _, _, m = srv.request("GET", "/metrics")
        line = [l for l in m.decode().splitlines() if l.startswith("medgemma_requests_cancelled_total ")]
        check(line and float(line[0].split()[1]) >= 4, "cancelled counter: %r" % line)
        check(srv.stop() == 0, "exit status after SIGTERM")

    res.case("disconnect_metrics_and_exit", metrics_count_cancellations)
    res.finish()


if __name__ == "__main__":
    main()
