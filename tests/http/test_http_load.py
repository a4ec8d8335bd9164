"""Load: 200 concurrent clients against a queue bound of 8 on the tiny model.
The server stays up, every accepted request gets its own answer (its
X-Request-Id and its own prompt length), every refused one a 503 with
Retry-After, and after SIGTERM the server exits 0 (under ASan: no leaks)."""
import http.client
import json
import threading
import time

from http_fixture import SLOW, Results, Server, check, tiny_model

CLIENTS = 200
QUEUE = 8


def main():
    res = Results()
    model = tiny_model()
    srv = Server(model, env={"MEDGEMMA_MAX_QUEUE": str(QUEUE)}, args=["--max-context", "512"]).wait_healthy()

    # Prompt lengths differ per client, so an answer's prompt_tokens says whose it is.
    def prompt_for(i):
        return "scan " * (1 + i % 50) + "report"

    expected_tokens = {}
    for k in range(50):
        status, _, b = srv.json("POST", "/generate", {"prompt": prompt_for(k), "max_tokens": 1})
        check(status == 200, "warm-up %d: %r" % (status, b))
        expected_tokens[k] = b["usage"]["prompt_tokens"]
    check(len(set(expected_tokens.values())) == 50, "prompt lengths do not give distinct token counts")

    results = [None] * CLIENTS
    barrier = threading.Barrier(CLIENTS)

    def client(i):
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120 * SLOW)
        try:
            body = json.dumps({"prompt": prompt_for(i), "max_tokens": 3, "temperature": 0})
            conn.connect()
            barrier.wait(timeout=60)
            conn.request("POST", "/generate", body=body, headers={"X-Request-Id": "load-%d" % i})
            r = conn.getresponse()
            results[i] = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        except Exception as e:  # recorded and reported below
            results[i] = ("exception", {}, repr(e).encode())
        finally:
            conn.close()

    def load():
        t0 = time.time()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300 * SLOW)
        elapsed = time.time() - t0
        accepted = refused = 0
        for i, r in enumerate(results):
            check(r is not None, "client %d got nothing" % i)
            status, hdrs, data = r
            check(status in (200, 503), "client %d: status %r %r" % (i, status, data[:200]))
            body = json.loads(data)
            if status == 200:
                accepted += 1
                check(hdrs.get("x-request-id") == "load-%d" % i, "client %d got answer %r" % (i, hdrs.get("x-request-id")))
                check(body["usage"]["prompt_tokens"] == expected_tokens[i % 50],
                      "client %d: prompt_tokens %d, expected %d" % (i, body["usage"]["prompt_tokens"],
                                                                    expected_tokens[i % 50]))
                check(isinstance(body["text"], str), "client %d: no text" % i)
            else:
                refused += 1
                check(body["error"]["type"] == "overloaded", "client %d: 503 type %r" % (i, body["error"]))
                check(hdrs.get("retry-after"), "client %d: 503 without Retry-After" % i)
        print("# %d accepted, %d refused with 503, %.1f s" % (accepted, refused, elapsed))
        check(accepted >= 1, "nothing accepted")
        check(refused >= 1, "no request was refused: the queue bound did not apply")
        check(accepted <= CLIENTS - refused, "counts")

    def still_serving():
        # Clients that gave up leave a cancelled request finishing its current
        # token (slow under ASan): the engine must come back to idle quickly.
        deadline = time.time() + 15
        while True:
            status, _, b = srv.json("GET", "/health")
            idle = status == 200 and b["queue_depth"] == 0 and b["running"] == 0
            if idle or time.time() > deadline:
                break
            time.sleep(0.2)
        check(idle, "health 15 s after load: %r" % b)
        status, _, b = srv.json("POST", "/generate", {"prompt": prompt_for(3), "max_tokens": 2})
        check(status == 200 and b["usage"]["prompt_tokens"] == expected_tokens[3], "after load: %r" % b)
        _, _, m = srv.request("GET", "/metrics")
        check(b'medgemma_requests_total{endpoint="generate",status="503"}' in m, "503s not in /metrics")

    def clean_exit():
        rc = srv.stop()
        check(rc == 0, "exit status %r after SIGTERM (ASan reports make it non-zero); log:\n%s" % (rc, srv.log_tail()))

    res.case("load_200_clients_queue_8", load)
    res.case("load_server_still_serving", still_serving)
    res.case("load_clean_exit_no_leaks", clean_exit)
    res.finish()


if __name__ == "__main__":
    main()
