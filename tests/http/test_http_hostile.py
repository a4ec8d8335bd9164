"""Slow and hostile clients (issue 18): slow headers and slow bodies
(slowloris), many idle connections, a connection limit, and HTTP/2 rapid
reset and stream floods. Throughout, /health and a real request are answered
within bounds, and the server exits cleanly at the end.

HTTP/2 frames are written by hand (cleartext, prior knowledge), so no h2
library is needed."""
import json
import socket
import struct
import threading
import time

from http_fixture import SLOW, Results, Server, check, tiny_model

CLIENT_TIMEOUT_S = 2
IDLE_TIMEOUT_S = 6
MAX_CONNECTIONS = 60


def health_ms(srv, timeout=10):
    t0 = time.time()
    status, _, body = srv.json("GET", "/health", timeout=timeout)
    return status, (time.time() - t0) * 1e3


def closed_within(sock, seconds):
    """Seconds until the peer closed sock (reads and discards), or None."""
    sock.settimeout(0.2)
    t0 = time.time()
    while time.time() - t0 < seconds:
        try:
            data = sock.recv(4096)
            if not data:
                return time.time() - t0
        except socket.timeout:
            continue
        except OSError:
            return time.time() - t0
    return None


def connect(srv):
    return socket.create_connection(("127.0.0.1", srv.port), timeout=10)


class HealthProbe:
    """Polls /health every 100 ms in a thread; worst latency and failures."""

    def __init__(self, srv):
        self.srv, self.worst, self.failures, self.n = srv, 0.0, [], 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            try:
                status, ms = health_ms(self.srv, timeout=10)
                self.n += 1
                self.worst = max(self.worst, ms)
                if status != 200:
                    self.failures.append(status)
            except Exception as e:  # noqa: BLE001 - recorded
                self.failures.append(repr(e))
            time.sleep(0.1)

    def finish(self):
        self.stop.set()
        self.t.join(15)
        return self


def slow_headers(srv):
    sock = connect(srv)
    probe = HealthProbe(srv)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    t0 = time.time()
    closed = None
    for _ in range(int(4 * CLIENT_TIMEOUT_S / 0.25)):
        try:
            sock.sendall(b"X")  # one header byte every 250 ms, never finishing
        except OSError:
            closed = time.time() - t0
            break
        time.sleep(0.25)
        sock.settimeout(0.01)
        try:
            if sock.recv(4096) == b"":
                closed = time.time() - t0
                break
        except socket.timeout:
            pass
        except OSError:
            closed = time.time() - t0
            break
    sock.close()
    probe.finish()
    check(closed is not None and closed < CLIENT_TIMEOUT_S * 2 + 1,
          "a client trickling header bytes kept its connection for %s s (client timeout %d s)" % (closed,
                                                                                             CLIENT_TIMEOUT_S))
    check(not probe.failures and probe.worst < 1000 * SLOW,
          "/health during slow headers: worst %.0f ms, failures %r" % (probe.worst, probe.failures[:3]))


def slow_body(srv):
    sock = connect(srv)
    probe = HealthProbe(srv)
    sock.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100000\r\n\r\n{\"prompt\": \"")
    t0 = time.time()
    closed = None
    while time.time() - t0 < CLIENT_TIMEOUT_S * 4:
        try:
            sock.sendall(b"a")  # one body byte every 250 ms
        except OSError:
            closed = time.time() - t0
            break
        time.sleep(0.25)
        sock.settimeout(0.01)
        try:
            if sock.recv(4096) == b"":
                closed = time.time() - t0
                break
        except socket.timeout:
            pass
        except OSError:
            closed = time.time() - t0
            break
    sock.close()
    probe.finish()
    check(closed is not None and closed < CLIENT_TIMEOUT_S * 2 + 1,
          "a client trickling body bytes kept its connection for %s s (client timeout %d s)" % (closed,
                                                                                           CLIENT_TIMEOUT_S))
    check(not probe.failures and probe.worst < 1000 * SLOW,
          "/health during a slow body: worst %.0f ms, failures %r" % (probe.worst, probe.failures[:3]))


def idle_connections_and_limit(model):
    """Its own server, with a longer client timeout than the others so the
    idle connections surely outlive the checks on a loaded machine."""
    timeout_s = IDLE_TIMEOUT_S
    srv = Server(model, env={"MEDGEMMA_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
                             "MEDGEMMA_CLIENT_TIMEOUT_S": str(timeout_s)}).wait_healthy()
    held = []
    try:
        for _ in range(MAX_CONNECTIONS - 5):
            held.append(connect(srv))
        time.sleep(0.3)
        status, ms = health_ms(srv)
        check(status == 200 and ms < 1000 * SLOW, "/health with %d idle connections: %d in %.0f ms"
              % (len(held), status, ms))
        time.sleep(0.3)  # the /health connection's close reaches the server
        for _ in range(10):
            held.append(connect(srv))
        time.sleep(0.3)
        # Over the limit: a short 503 and the connection closes.
        extra = connect(srv)
        extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        extra.settimeout(5)
        data = b""
        try:
            while True:
                chunk = extra.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        extra.close()
        check(data.startswith(b"HTTP/1.1 503") and b"MEDGEMMA_MAX_CONNECTIONS" in data,
              "over the connection limit: %r" % data[-260:])
        # The idle ones are closed by the server after the client timeout, so
        # the limit frees itself: /health answers again.
        deadline = time.time() + timeout_s * 3 + 2
        status = None
        while time.time() < deadline:
            try:
                status, _ = health_ms(srv, timeout=2)
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        check(status == 200, "/health after the idle connections timed out: %r" % status)
        deadline = time.time() + timeout_s * 2 + 2
        open_ = list(held)
        while open_ and time.time() < deadline:
            open_ = [s for s in open_ if closed_within(s, 0.02) is None]
        still_open = len(open_)
        check(still_open == 0, "%d idle connections still open after the client timeout" % still_open)
        lines = [l for l in srv.log_lines() if l.get("event") == "connection_limit"]
        check(lines and lines[0]["severity"] == "WARNING", "no connection-limit warning in the log")
    finally:
        for s in held:
            s.close()
        rc = srv.stop()
    check(rc == 0, "exit status %r after the idle connections" % rc)


# ---- HTTP/2 by hand


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_literal(name_index, value):
    """Literal header field without indexing, indexed name (static table)."""
    v = value.encode()
    return bytes([name_index]) + bytes([len(v)]) + v


def h2_headers(path, method_index=0x82):
    # :method GET (0x82) or POST (0x83), :scheme http (0x86), :path (4), :authority (1)
    return bytes([method_index, 0x86]) + hpack_literal(4, path) + hpack_literal(1, "x")


def h2_connect(srv):
    sock = connect(srv)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0))  # SETTINGS
    return sock


def drain(sock, stop):
    sock.settimeout(0.2)
    n = 0
    while not stop.is_set():
        try:
            data = sock.recv(65536)
            if not data:
                return n
            n += len(data)
        except socket.timeout:
            continue
        except OSError:
            return n
    return n


def rapid_reset(srv):
    sock = h2_connect(srv)
    stop = threading.Event()
    reader = threading.Thread(target=drain, args=(sock, stop), daemon=True)
    reader.start()
    probe = HealthProbe(srv)
    t0 = time.time()
    stream = 1
    sent = 0
    closed_by_server = False
    try:
        while time.time() - t0 < 3:
            batch = b""
            for _ in range(100):
                # HEADERS (END_STREAM|END_HEADERS) then RST_STREAM(CANCEL) at once
                batch += frame(1, 0x5, stream, h2_headers("/v1/models"))
                batch += frame(3, 0, stream, struct.pack(">I", 8))
                stream += 2
            sock.sendall(batch)
            sent += 100
    except OSError:
        closed_by_server = True  # the server closes a flooding connection
    stop.set()
    sock.close()
    probe.finish()
    check(sent > 1000 or closed_by_server, "only %d streams were sent" % sent)
    check(not probe.failures and probe.worst < 2000 * SLOW,
          "/health during an HTTP/2 rapid reset of %d streams: worst %.0f ms, failures %r"
          % (sent, probe.worst, probe.failures[:3]))
    status, _, body = srv.json("POST", "/generate", {"prompt": "hi", "max_tokens": 2})
    check(status == 200, "request after the rapid reset: %d %r" % (status, body))
    lines = [l for l in srv.log_lines() if l.get("event") == "request_flood"]
    check(lines and lines[0]["severity"] == "WARNING", "the flooding connection was not closed with a warning")


def stream_flood(srv):
    """Opens many streams on one connection and never reads the answers."""
    sock = h2_connect(srv)
    probe = HealthProbe(srv)
    body = json.dumps({"prompt": "hi", "max_tokens": 2}).encode()
    batch = b""
    for i in range(2000):
        stream = 1 + 2 * i
        batch += frame(1, 0x4, stream, h2_headers("/generate", 0x83))  # END_HEADERS, body follows
        batch += frame(0, 0x1, stream, body)  # DATA, END_STREAM
    try:
        sock.sendall(batch)
    except OSError:
        pass
    time.sleep(2)
    probe.finish()
    sock.close()
    check(not probe.failures and probe.worst < 2000 * SLOW,
          "/health during a stream flood: worst %.0f ms, failures %r" % (probe.worst, probe.failures[:3]))
    time.sleep(0.5)
    status, _, b = srv.json("POST", "/generate", {"prompt": "hi", "max_tokens": 2})
    check(status == 200, "request after the stream flood: %d %r" % (status, b))


def main():
    res = Results()
    model = tiny_model()
    srv = Server(model, env={"MEDGEMMA_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
                             "MEDGEMMA_CLIENT_TIMEOUT_S": str(CLIENT_TIMEOUT_S)}).wait_healthy()
    res.case("hostile_slow_headers_closed_health_answers", slow_headers, srv)
    res.case("hostile_slow_body_closed_health_answers", slow_body, srv)
    res.case("hostile_idle_connections_limit_503_and_timeout", idle_connections_and_limit, model)
    res.case("hostile_h2_rapid_reset_health_answers", rapid_reset, srv)
    res.case("hostile_h2_stream_flood_health_answers", stream_flood, srv)

    def clean_exit():
        rc = srv.stop()
        check(rc == 0, "exit status %r after the hostile clients; log:\n%s" % (rc, srv.log_tail()))

    res.case("hostile_server_exits_cleanly", clean_exit)
    res.finish()


if __name__ == "__main__":
    main()
