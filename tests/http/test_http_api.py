"""Every endpoint's success shape against a real server on the tiny synth
model: /health, /v1/models, /metrics, /generate, /analyze (text, images, CT
slices), /v1/chat/completions (plain, streamed, stop strings, seeds, JSON
mode), cleartext HTTP/2, and SIGTERM."""
import json
import re
import shutil
import subprocess

from http_fixture import Results, Server, check, gray16_png_b64, png_b64, tiny_model


def is_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_usage(u, openai=False):
    check(isinstance(u.get("prompt_tokens"), int) and u["prompt_tokens"] > 0, "usage.prompt_tokens %r" % u)
    check(isinstance(u.get("completion_tokens"), int) and u["completion_tokens"] >= 0, "usage.completion_tokens %r" % u)
    if openai:
        check(u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"], "usage.total_tokens %r" % u)


def metric(text, name, labels=""):
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


def read_sse(data):
    """data: lines of an event stream -> (chunks, saw_done)."""
    chunks, done = [], False
    for block in data.decode().split("\n\n"):
        if not block.strip():
            continue
        check(block.startswith("data: "), "SSE block without 'data: ': %r" % block[:100])
        payload = block[len("data: "):]
        if payload == "[DONE]":
            done = True
            continue
        check(not done, "data after [DONE]")
        chunks.append(json.loads(payload))
    return chunks, done


def stream_text(chunks):
    text, finish = "", None
    for c in chunks:
        check(c["object"] == "chat.completion.chunk", "chunk object %r" % c.get("object"))
        for ch in c["choices"]:
            text += ch["delta"].get("content") or ""
            if ch.get("finish_reason"):
                finish = ch["finish_reason"]
    return text, finish


def main():
    res = Results()
    model = tiny_model()
    srv = Server(model, args=["--max-context", "1024"]).wait_healthy()
    chat_path = "/v1/chat/completions"

    def health():
        status, hdrs, b = srv.json("GET", "/health")
        check(status == 200, "status %d" % status)
        check(b["status"] == "healthy" and b["model_loaded"] is True, "%r" % b)
        check(isinstance(b["gpu_available"], bool), "gpu_available %r" % b)
        check(b["gpu_name"] is None or isinstance(b["gpu_name"], str), "gpu_name %r" % b)
        check(b["backend"] in ("cpu", "cuda"), "backend %r" % b)
        check(is_num(b["queue_depth"]) and is_num(b["uptime_s"]) and b["model"] == "tiny", "%r" % b)
        check("x-request-id" in hdrs, "no x-request-id header")

    def models():
        status, _, b = srv.json("GET", "/v1/models")
        check(status == 200 and b["object"] == "list", "%r" % b)
        check(b["data"][0]["id"] == "tiny" and b["data"][0]["object"] == "model", "%r" % b)

    def generate():
        status, _, b = srv.json("POST", "/generate", {"prompt": "What is a pneumothorax?", "max_tokens": 5})
        check(status == 200, "status %d %r" % (status, b))
        check(isinstance(b["text"], str) and is_num(b["inference_time_ms"]), "%r" % b)
        check_usage(b["usage"])
        check(b["usage"]["completion_tokens"] <= 5, "more tokens than max_tokens: %r" % b)
        check(b["finish_reason"] in ("stop", "length"), "%r" % b)
        if b["finish_reason"] == "length":
            check(b["usage"]["completion_tokens"] == 5, "length finish with %r" % b)

    def analyze_text():
        status, _, b = srv.json("POST", "/analyze", {"prompt": "Return JSON.", "max_tokens": 4})
        check(status == 200, "status %d %r" % (status, b))
        check("result" in b and isinstance(b["text"], str), "%r" % b)
        if b["result"] is None:
            check(isinstance(b.get("parse_error"), str), "null result without parse_error: %r" % b)
        check_usage(b["usage"])

    img1, img2 = png_b64(40, 30, 1), png_b64(20, 50, 2, data_uri=True)

    def analyze_images():
        status, _, b = srv.json("POST", "/analyze",
                                {"prompt": "Findings?", "images": [img1, img2], "modality": "CXR", "max_tokens": 3})
        check(status == 200, "status %d %r" % (status, b))
        check_usage(b["usage"])
        status, _, one = srv.json("POST", "/analyze", {"prompt": "Findings?", "images": [img1], "max_tokens": 3})
        check(status == 200, "one image: %d %r" % (status, one))
        diff = b["usage"]["prompt_tokens"] - one["usage"]["prompt_tokens"]
        check(diff > 8, "a second image adds only %d prompt tokens" % diff)

    def ct_slices_labelled():
        body = {"prompt": "Findings?", "images": [img1, img2], "max_tokens": 2}
        _, _, plain = srv.json("POST", "/analyze", dict(body, modality="CXR"))
        _, _, ct = srv.json("POST", "/analyze", dict(body, modality="CT"))
        # "SLICE 1" and "SLICE 2" add a few tokens each.
        diff = ct["usage"]["prompt_tokens"] - plain["usage"]["prompt_tokens"]
        check(4 <= diff <= 12, "CT adds %d prompt tokens for two SLICE labels" % diff)

    def ct_and_mri_series():
        slices = [gray16_png_b64(24, 24, k) for k in range(5)]
        base = {"prompt": "Findings?", "max_tokens": 2}
        status, _, all5 = srv.json("POST", "/analyze", dict(base, modality="CT", ct={
            "slices": slices, "rescale_slope": 1, "rescale_intercept": -1024,
            "windows": {"r": [-1024, 1024], "g": [-135, 215], "b": [0, 80]}}))
        check(status == 200, "ct: %d %r" % (status, all5))
        status, _, three = srv.json("POST", "/analyze", dict(base, ct={"slices": slices, "max_slices": 3}))
        check(status == 200, "ct max_slices: %d %r" % (status, three))
        # Two slices fewer (sampled evenly): two soft-token blocks and two labels fewer.
        check(all5["usage"]["prompt_tokens"] > three["usage"]["prompt_tokens"] + 2 * 8, "ct sampling: %r vs %r"
              % (all5["usage"], three["usage"]))
        status, _, b = srv.json("POST", "/analyze", dict(base, mri={"slices": slices[:2]}))
        check(status == 200, "mri: %d %r" % (status, b))
        status, _, b = srv.json("POST", "/analyze", dict(base, ct={"slices": [slices[0], png_b64(8, 8)]}))
        check(status == 400 and "slice" in b["error"]["message"], "an RGB slice: %d %r" % (status, b))
        status, _, b = srv.json("POST", "/analyze", dict(base, ct={"slices": slices, "windows": {"g": [50, 50]}}))
        check(status == 400 and "window" in b["error"]["message"], "an empty window: %d %r" % (status, b))

    def text_only_skips_vision():
        _, _, m0 = srv.request("GET", "/metrics")
        before = metric(m0.decode(), "medgemma_vision_encode_seconds_count")
        srv.json("POST", "/generate", {"prompt": "hi", "max_tokens": 1})
        _, _, m1 = srv.request("GET", "/metrics")
        after_text = metric(m1.decode(), "medgemma_vision_encode_seconds_count")
        check(after_text == before, "a text request ran the vision tower (%r -> %r)" % (before, after_text))
        srv.json("POST", "/analyze", {"prompt": "x", "images": [img1], "max_tokens": 1})
        _, _, m2 = srv.request("GET", "/metrics")
        check(metric(m2.decode(), "medgemma_vision_encode_seconds_count") == before + 1, "image request not counted")

    chat_body = {"messages": [{"role": "system", "content": "You are a radiologist."},
                              {"role": "user", "content": [{"type": "text", "text": "Describe:"},
                                                           {"type": "image_url", "image_url": {"url": img2}}]}],
                 "max_tokens": 12, "temperature": 0.9, "seed": 1234}

    def chat_plain():
        status, _, b = srv.json("POST", chat_path, chat_body)
        check(status == 200, "status %d %r" % (status, b))
        check(b["object"] == "chat.completion" and b["id"].startswith("chatcmpl-"), "%r" % b)
        msg = b["choices"][0]["message"]
        check(msg["role"] == "assistant" and isinstance(msg["content"], str), "%r" % b)
        check(b["choices"][0]["finish_reason"] in ("stop", "length"), "%r" % b)
        check_usage(b["usage"], openai=True)

    def chat_stream_equals_plain():
        for body in (chat_body, dict(chat_body, temperature=0), dict(chat_body, seed=99, max_tokens=20)):
            _, _, plain = srv.json("POST", chat_path, body)
            status, hdrs, data = srv.request("POST", chat_path, dict(body, stream=True))
            check(status == 200 and hdrs["content-type"].startswith("text/event-stream"), "stream status %d" % status)
            chunks, done = read_sse(data)
            check(done, "no data: [DONE]")
            text, finish = stream_text(chunks)
            check(chunks[0]["choices"][0]["delta"].get("role") == "assistant", "first chunk has no role")
            check(text == plain["choices"][0]["message"]["content"],
                  "streamed %r != plain %r" % (text, plain["choices"][0]["message"]["content"]))
            check(finish == plain["choices"][0]["finish_reason"], "finish %r vs %r" % (finish, plain))

    def stream_usage_chunk():
        status, _, data = srv.request("POST", chat_path,
                                      dict(chat_body, stream=True, stream_options={"include_usage": True}))
        chunks, _ = read_sse(data)
        check("usage" in chunks[-1], "last chunk has no usage: %r" % chunks[-1])
        check_usage(chunks[-1]["usage"], openai=True)

    def same_seed_same_text():
        a = srv.json("POST", chat_path, chat_body)[2]["choices"][0]["message"]["content"]
        b = srv.json("POST", chat_path, chat_body)[2]["choices"][0]["message"]["content"]
        check(a == b, "same seed, different answers: %r vs %r" % (a, b))

    def stop_strings():
        body = {"messages": [{"role": "user", "content": "Count."}], "max_tokens": 24, "temperature": 0}
        full = srv.json("POST", chat_path, body)[2]["choices"][0]["message"]["content"]
        if len(full) < 6:
            raise AssertionError("greedy answer too short to pick a stop string: %r" % full)
        stop = full[len(full) // 2:len(full) // 2 + 3]
        b = srv.json("POST", chat_path, dict(body, stop=[stop, "\x01never"]))[2]
        cut = b["choices"][0]["message"]["content"]
        check(cut == full[:full.index(stop)], "stop %r: got %r from %r" % (stop, cut, full))
        check(b["choices"][0]["finish_reason"] == "stop", "finish_reason %r" % b["choices"][0])
        chunks, _ = read_sse(srv.request("POST", chat_path, dict(body, stop=stop, stream=True))[2])
        check(stream_text(chunks)[0] == cut, "streamed with stop differs")

    def json_mode():
        b = srv.json("POST", chat_path, dict(chat_body, response_format={"type": "json_object"}))[2]
        content = b["choices"][0]["message"]["content"]
        check(isinstance(content, str), "%r" % b)
        # Random weights rarely write JSON; when the text parses it is returned as compact JSON.
        try:
            json.loads(content)
        except ValueError:
            pass

    def metrics():
        status, hdrs, data = srv.request("GET", "/metrics")
        text = data.decode()
        check(status == 200 and hdrs["content-type"].startswith("text/plain"), "status %d" % status)
        check(metric(text, "medgemma_requests_total", '{endpoint="generate",status="200"}') >= 2, "no generate count")
        for name in ("medgemma_request_duration_seconds_count", "medgemma_time_to_first_token_seconds_count",
                     "medgemma_prompt_tokens_total", "medgemma_generated_tokens_total", "medgemma_queue_depth",
                     "medgemma_requests_running", "medgemma_vision_encode_seconds_sum"):
            check(metric(text, name) is not None, "missing %s" % name)
        check(metric(text, "medgemma_generated_tokens_total") > 0, "no generated tokens counted")

    def h2c():
        if not shutil.which("curl"):
            raise AssertionError("curl is needed for the HTTP/2 check")
        for flag in ("--http2-prior-knowledge", "--http2"):
            r = subprocess.run(["curl", "-s", "-i", flag, "-d", '{"prompt":"hi","max_tokens":2}',
                                srv.url() + "/generate"], capture_output=True, text=True, timeout=60)
            check(re.search(r"^HTTP/2 200", r.stdout, re.M), "%s: %r" % (flag, r.stdout[:300]))
            body = json.loads(r.stdout.split("\n\n")[-1])  # text mode turned CRLF into LF
            check(isinstance(body.get("text"), str), "%s body %r" % (flag, body))

    def logs_have_no_patient_data():
        secret = "PATIENT-NAME-Zyxwvut"
        srv.json("POST", "/generate", {"prompt": "Report for " + secret, "max_tokens": 2})
        lines = srv.log_lines()
        check(not any(secret in json.dumps(l) for l in lines), "the prompt appears in the logs")
        reqs = [l for l in lines if l.get("message") == "request" and l.get("endpoint") == "generate"]
        check(reqs and all(k in reqs[-1] for k in ("request_id", "status", "prompt_tokens", "completion_tokens",
                                                   "total_ms", "severity")), "request log line: %r" % reqs[-1:])

    for name, fn in [("health_shape", health), ("models_shape", models), ("generate_shape", generate),
                     ("analyze_text_shape", analyze_text), ("analyze_images_shape", analyze_images),
                     ("analyze_ct_slices_labelled", ct_slices_labelled), ("analyze_ct_mri_series", ct_and_mri_series),
                     ("text_only_skips_vision", text_only_skips_vision), ("chat_shape", chat_plain),
                     ("chat_stream_equals_non_stream", chat_stream_equals_plain),
                     ("chat_stream_usage_chunk", stream_usage_chunk), ("chat_same_seed_same_text", same_seed_same_text),
                     ("chat_stop_strings", stop_strings), ("chat_json_mode_shape", json_mode), ("metrics", metrics),
                     ("http2_cleartext", h2c), ("logs_without_patient_data", logs_have_no_patient_data)]:
        res.case(name, fn)

    def sigterm():
        rc = srv.stop()
        check(rc == 0, "exit status %r after SIGTERM; log:\n%s" % (rc, srv.log_tail()))
        check(any(l.get("message") == "stopped" for l in srv.log_lines()), "no 'stopped' log line")

    res.case("sigterm_exits_0", sigterm)
    res.finish()


if __name__ == "__main__":
    main()
