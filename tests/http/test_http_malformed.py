"""Malformed requests against a real server: each one gets the right status
and a JSON error {"error": {"type", "message"}}, and a valid request sent
right after it is answered correctly (the server stays up and unharmed)."""
import base64
import json
import os

from http_fixture import Results, Server, check, png_b64, png_bytes, scratch_dir, tiny_model

MAX_IMAGES = 3
MAX_BODY_MB = 1
MAX_CONTEXT = 512


def gen(**fields):
    body = {"prompt": "hello", "max_tokens": 2}
    body.update(fields)
    return body


def chat(**fields):
    body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}
    body.update(fields)
    return body


def user_parts(*parts):
    return chat(messages=[{"role": "user", "content": list(parts)}])


IMG = png_b64(16, 16)
TRUNCATED_PNG = base64.b64encode(png_bytes(64, 64)[:80]).decode()

# (name, method, path, body, expected status)
CASES = [
    ("truncated_json", "POST", "/generate", '{"prompt": "hi"', 400),
    ("not_json", "POST", "/generate", "hello there", 400),
    ("empty_body", "POST", "/generate", "", 400),
    ("json_array_body", "POST", "/generate", "[1, 2]", 400),
    ("json_string_body", "POST", "/analyze", '"prompt"', 400),
    ("deeply_nested_json", "POST", "/generate", "[" * 5000 + "]" * 5000, 400),
    ("prompt_missing", "POST", "/generate", {"max_tokens": 2}, 400),
    ("prompt_number", "POST", "/generate", gen(prompt=5), 400),
    ("prompt_null", "POST", "/analyze", gen(prompt=None), 400),
    ("prompt_empty", "POST", "/generate", gen(prompt=""), 400),
    ("prompt_invalid_utf8", "POST", "/generate", b'{"prompt": "a\xff\xfeb", "max_tokens": 2}', 400),
    ("prompt_longer_than_context", "POST", "/generate", gen(prompt="medical " * (MAX_CONTEXT * 2)), 400),
    ("max_tokens_string", "POST", "/generate", gen(max_tokens="10"), 400),
    ("max_tokens_zero", "POST", "/generate", gen(max_tokens=0), 400),
    ("max_tokens_negative", "POST", "/generate", gen(max_tokens=-5), 400),
    ("max_tokens_fraction", "POST", "/generate", gen(max_tokens=1.5), 400),
    ("max_tokens_huge", "POST", "/generate", '{"prompt": "x", "max_tokens": 99999999999999999999999}', 400),
    ("max_tokens_over_limit", "POST", "/analyze", gen(max_tokens=10 ** 6), 400),
    ("temperature_string", "POST", "/generate", gen(temperature="hot"), 400),
    ("temperature_negative", "POST", "/generate", gen(temperature=-0.5), 400),
    ("temperature_infinite", "POST", "/generate", '{"prompt": "x", "temperature": 1e999}', 400),
    ("top_p_zero", "POST", "/generate", gen(top_p=0), 400),
    ("top_p_above_one", "POST", "/generate", gen(top_p=1.5), 400),
    ("top_k_negative", "POST", "/generate", gen(top_k=-1), 400),
    ("seed_string", "POST", "/generate", gen(seed="abc"), 400),
    ("seed_fraction", "POST", "/generate", gen(seed=0.25), 400),
    ("system_number", "POST", "/analyze", gen(system=7), 400),
    ("modality_object", "POST", "/analyze", gen(modality={"a": 1}), 400),
    ("images_not_array", "POST", "/analyze", gen(images="abc"), 400),
    ("image_not_string", "POST", "/analyze", gen(images=[5]), 400),
    ("image_bad_base64", "POST", "/analyze", gen(images=["!!!not-base64!!!"]), 400),
    ("image_base64_with_newline", "POST", "/analyze", gen(images=[IMG[:20] + "\n" + IMG[20:]]), 400),
    ("image_not_an_image", "POST", "/analyze", gen(images=[base64.b64encode(b"hello world, no image").decode()]), 400),
    ("image_data_uri_not_base64", "POST", "/analyze", gen(images=["data:image/png,abcd"]), 400),
    ("image_truncated_png", "POST", "/analyze", gen(images=[TRUNCATED_PNG]), 400),
    ("image_empty_string", "POST", "/analyze", gen(images=[""]), 400),
    ("too_many_images", "POST", "/analyze", gen(images=[IMG] * (MAX_IMAGES + 1)), 400),
    ("images_on_generate", "POST", "/generate", gen(images=[IMG]), 400),
    ("chat_messages_missing", "POST", "/v1/chat/completions", {"max_tokens": 2}, 400),
    ("chat_messages_empty", "POST", "/v1/chat/completions", chat(messages=[]), 400),
    ("chat_messages_not_array", "POST", "/v1/chat/completions", chat(messages="hi"), 400),
    ("chat_message_not_object", "POST", "/v1/chat/completions", chat(messages=["hi"]), 400),
    ("chat_role_unknown", "POST", "/v1/chat/completions", chat(messages=[{"role": "robot", "content": "x"}]), 400),
    ("chat_role_missing", "POST", "/v1/chat/completions", chat(messages=[{"content": "x"}]), 400),
    ("chat_content_number", "POST", "/v1/chat/completions", chat(messages=[{"role": "user", "content": 3}]), 400),
    ("chat_part_unknown_type", "POST", "/v1/chat/completions", user_parts({"type": "audio", "data": "x"}), 400),
    ("chat_part_text_missing", "POST", "/v1/chat/completions", user_parts({"type": "text"}), 400),
    ("chat_image_remote_url", "POST", "/v1/chat/completions",
     user_parts({"type": "image_url", "image_url": {"url": "http://example.com/x.png"}}), 400),
    ("chat_image_bad_base64", "POST", "/v1/chat/completions",
     user_parts({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@@"}}), 400),
    ("chat_last_message_assistant", "POST", "/v1/chat/completions",
     chat(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]), 400),
    ("chat_stream_not_bool", "POST", "/v1/chat/completions", chat(stream="yes"), 400),
    ("chat_stop_number", "POST", "/v1/chat/completions", chat(stop=5), 400),
    ("chat_stop_too_many", "POST", "/v1/chat/completions", chat(stop=["a", "b", "c", "d", "e"]), 400),
    ("chat_stop_empty_string", "POST", "/v1/chat/completions", chat(stop=[""]), 400),
    ("chat_response_format_unknown", "POST", "/v1/chat/completions", chat(response_format={"type": "xml"}), 400),
    ("chat_n_two", "POST", "/v1/chat/completions", chat(n=2), 400),
    ("chat_max_completion_tokens_zero", "POST", "/v1/chat/completions", chat(max_completion_tokens=0), 400),
    # Strict bodies (issue 18): each of these used to be answered 200.
    ("unknown_field_image_typo", "POST", "/analyze", {"prompt": "Is there a pneumothorax?", "image": IMG}, 400),
    ("unknown_field_chat", "POST", "/v1/chat/completions", chat(frobnicate=1), 400),
    ("unknown_field_generate", "POST", "/generate", gen(max_token=3), 400),
    ("unknown_field_in_message", "POST", "/v1/chat/completions",
     chat(messages=[{"role": "user", "content": "hi", "contnet": "x"}]), 400),
    ("trailing_bytes", "POST", "/generate", '{"prompt":"hi"} xyz', 400),
    ("duplicate_key", "POST", "/generate", '{"prompt":"hi","max_tokens":2,"prompt":"there"}', 400),
    ("lone_surrogate", "POST", "/generate", '{"prompt":"a\\ud800b","max_tokens":2}', 400),
    ("nul_escape", "POST", "/generate", '{"prompt":"a\\u0000b","max_tokens":2}', 400),
    ("data_uri_text_plain", "POST", "/analyze", gen(images=["data:text/plain;base64," + IMG]), 400),
    ("unknown_endpoint", "POST", "/v2/analyze", gen(), 404),
    ("unknown_endpoint_get", "GET", "/admin", None, 404),
    ("wrong_method_analyze", "GET", "/analyze", None, 405),
    ("wrong_method_health", "DELETE", "/health", None, 405),
    ("wrong_method_chat", "PUT", "/v1/chat/completions", chat(), 405),
    ("body_over_limit", "POST", "/analyze", gen(prompt="x" * int(MAX_BODY_MB * 1.5 * 2 ** 20)), 413),
]

# Words the error message must hold (it names the problem).
EXPECTED_WORDS = {
    "unknown_field_image_typo": ("'image'", "did you mean 'images'"),
    "unknown_field_chat": ("'frobnicate'",),
    "unknown_field_generate": ("'max_token'", "max_tokens"),
    "unknown_field_in_message": ("'contnet'", "messages[0]"),
    "trailing_bytes": ("after the JSON value",),
    "duplicate_key": ("duplicate", "'prompt'"),
    "lone_surrogate": ("surrogate",),
    "nul_escape": ("\\u0000",),
    "data_uri_text_plain": ("images[0]", "text/plain"),
    "deeply_nested_json": ("nest",),
}


def check_error(status, hdrs, data, expected, what):
    check(status == expected, "%s: status %d, expected %d (body %r)" % (what, status, expected, data[:200]))
    check(hdrs.get("content-type", "").startswith("application/json"), "%s: content-type %r" % (what, hdrs.get("content-type")))
    body = json.loads(data)
    err = body.get("error")
    check(isinstance(err, dict), "%s: no error object in %r" % (what, body))
    check(isinstance(err.get("type"), str) and err["type"], "%s: error.type missing" % what)
    check(isinstance(err.get("message"), str) and len(err["message"]) > 5, "%s: error.message missing" % what)
    return err


def valid_request_answered(srv, what):
    status, _, body = srv.json("POST", "/generate", {"prompt": "Describe a chest X-ray.", "max_tokens": 2})
    check(status == 200, "valid request after %s: status %d %r" % (what, status, body))
    check(isinstance(body.get("text"), str), "valid request after %s: no text" % what)
    check(body["usage"]["completion_tokens"] >= 1, "valid request after %s: no tokens" % what)


def run_case(srv, name, method, path, body, expected):
    status, hdrs, data = srv.request(method, path, body, {"Content-Type": "application/json"})
    err = check_error(status, hdrs, data, expected, name)
    if expected == 405:
        check("allow" in hdrs, "%s: no Allow header" % name)
    # Error messages name the field, never echo request contents.
    check("!!!not-base64" not in err["message"] and "medical medical" not in err["message"],
          "%s: the message echoes request data" % name)
    for needle in EXPECTED_WORDS.get(name, ()):
        check(needle in err["message"], "%s: message %r does not say %r" % (name, err["message"], needle))
    valid_request_answered(srv, name)


def auth_cases(res, model):
    key = "s3cret-key-0123"
    key_file = os.path.join(scratch_dir(), "api-key")
    with open(key_file, "w") as f:
        f.write(key + "\n")  # as secret managers write it: the newline is not part of the key
    srv = Server(model, env={"MEDGEMMA_MAX_CONTEXT": str(MAX_CONTEXT)}, args=["--api-key-file", key_file])
    srv.wait_healthy()
    try:
        def missing():
            check_error(*srv.request("POST", "/generate", gen()), 401, "no key")

        def wrong():
            check_error(*srv.request("POST", "/generate", gen(), {"Authorization": "Bearer s3cret-key-0124"}), 401,
                        "wrong key")

        def wrong_scheme():
            check_error(*srv.request("GET", "/v1/models", None, {"Authorization": "Basic " + key}), 401,
                        "basic scheme")

        def prefix_of_key():
            check_error(*srv.request("GET", "/metrics", None, {"Authorization": "Bearer s3cret"}), 401, "prefix")

        def health_open_and_key_works():
            status, _, _ = srv.request("GET", "/health")
            check(status == 200, "/health needs no key, got %d" % status)
            status, _, body = srv.json("POST", "/generate", gen(), {"Authorization": "Bearer " + key})
            check(status == 200 and "text" in body, "right key: %d %r" % (status, body))

        res.case("auth_missing_key_401", missing)
        res.case("auth_wrong_key_401", wrong)
        res.case("auth_wrong_scheme_401", wrong_scheme)
        res.case("auth_key_prefix_401", prefix_of_key)
        res.case("auth_health_open_right_key_ok", health_open_and_key_works)
    finally:
        srv.stop()


def main():
    res = Results()
    model = tiny_model()
    srv = Server(model, env={"MEDGEMMA_MAX_IMAGES": str(MAX_IMAGES), "MEDGEMMA_MAX_BODY_MB": str(MAX_BODY_MB),
                             "MEDGEMMA_MAX_TOKENS": "4096"},
                 args=["--max-context", str(MAX_CONTEXT)]).wait_healthy()
    for name, method, path, body, expected in CASES:
        res.case("malformed_" + name, run_case, srv, name, method, path, body, expected)

    def still_up():
        status, _, body = srv.json("GET", "/health")
        check(status == 200 and body["status"] == "healthy", "health after malformed requests: %r" % body)
        rc = srv.stop()
        check(rc == 0, "SIGTERM exit status %r; log:\n%s" % (rc, srv.log_tail()))

    res.case("malformed_server_survives_and_exits_0", still_up)
    print("# %d malformed cases" % len(CASES))
    auth_cases(res, model)
    res.finish()


if __name__ == "__main__":
    main()
