"""Structured output over HTTP (grammar/): response_format json_schema and
json_object on /v1/chat/completions (plain, streamed, and through the
official openai SDK) and on /analyze, on the tiny random-weight model, which
never writes JSON on its own. Every complete answer validates with
jsonschema; an answer cut by max_tokens says so (finish_reason "length",
/analyze result null with a parse_error about the incomplete value); bad
schemas are 400s naming the keyword and its path, and the server keeps
serving."""
import json

import jsonschema
from http_fixture import Results, Server, check, tiny_model

FINDINGS = {
    "type": "object",
    "properties": {
        "pneumothorax": {"type": "string", "enum": ["absent", "present", "indeterminate"]},
        "effusion": {"type": "string", "enum": ["none", "small", "moderate", "large"]},
        "cardiomegaly": {"type": "boolean"},
        "box_2d": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 1000},
                   "minItems": 4, "maxItems": 4},
    },
    "required": ["pneumothorax", "effusion", "cardiomegaly", "box_2d"],
    "additionalProperties": False,
}


def chat_body(schema, max_tokens=64, stream=False, seed=3):
    return {"messages": [{"role": "user", "content": "Report the findings as JSON."}], "max_tokens": max_tokens,
            "temperature": 1.0, "seed": seed, "stream": stream,
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "findings", "schema": schema, "strict": True}}}


def sse_text(raw):
    text, finish = "", None
    for line in raw.decode().splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        check("error" not in chunk, "stream error %r" % chunk)
        for ch in chunk.get("choices", []):
            text += ch.get("delta", {}).get("content") or ""
            finish = ch.get("finish_reason") or finish
    return text, finish


def main():
    res = Results()
    srv = Server(tiny_model(), args=["--max-context", "1024"]).wait_healthy()

    def chat_schema():
        for seed in (1, 2, 3):
            st, _, body = srv.json("POST", "/v1/chat/completions", chat_body(FINDINGS, max_tokens=96, seed=seed))
            check(st == 200, "status %d %r" % (st, body))
            ch = body["choices"][0]
            if ch["finish_reason"] == "stop":
                jsonschema.validate(json.loads(ch["message"]["content"]), FINDINGS)

    def chat_stream_equals_plain():
        st, _, plain = srv.json("POST", "/v1/chat/completions", chat_body(FINDINGS, max_tokens=96, seed=7))
        check(st == 200, "status %d" % st)
        st, _, raw = srv.request("POST", "/v1/chat/completions", json.dumps(chat_body(FINDINGS, 96, True, 7)))
        check(st == 200, "stream status %d" % st)
        text, finish = sse_text(raw)
        check(text == plain["choices"][0]["message"]["content"], "stream %r vs plain %r" % (
            text, plain["choices"][0]["message"]["content"]))
        check(finish == plain["choices"][0]["finish_reason"], "finish %r" % finish)

    def json_object():
        body = {"messages": [{"role": "user", "content": "JSON please"}], "max_tokens": 40, "seed": 5,
                "temperature": 1.0, "response_format": {"type": "json_object"}}
        st, _, r = srv.json("POST", "/v1/chat/completions", body)
        check(st == 200, "status %d %r" % (st, r))
        content = r["choices"][0]["message"]["content"]
        check(content.startswith("{"), "content %r" % content)
        if r["choices"][0]["finish_reason"] == "stop":
            check(isinstance(json.loads(content), dict), "not an object: %r" % content)

    def cut_by_max_tokens():
        st, _, r = srv.json("POST", "/v1/chat/completions", chat_body(FINDINGS, max_tokens=3))
        check(st == 200 and r["choices"][0]["finish_reason"] == "length", "%d %r" % (st, r))
        body = {"prompt": "Findings?", "max_tokens": 3, "temperature": 1.0, "seed": 1,
                "response_format": {"type": "json_schema", "json_schema": {"name": "f", "schema": FINDINGS}}}
        st, _, r = srv.json("POST", "/analyze", body)
        check(st == 200, "analyze status %d %r" % (st, r))
        check(r["finish_reason"] == "length" and r["result"] is None, "analyze %r" % r)
        check("incomplete" in r["parse_error"], "parse_error %r" % r["parse_error"])

    def analyze_result_validates():
        small = {"type": "object", "properties": {"urgent": {"type": "boolean"},
                                                  "grade": {"type": "integer", "minimum": 0, "maximum": 3}},
                 "required": ["urgent", "grade"], "additionalProperties": False}
        for seed in (1, 2):
            body = {"prompt": "Triage this study.", "max_tokens": 64, "temperature": 1.0, "seed": seed,
                    "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": small}}}
            st, _, r = srv.json("POST", "/analyze", body)
            check(st == 200, "status %d %r" % (st, r))
            check(r["finish_reason"] == "stop", "finish %r" % r)
            jsonschema.validate(r["result"], small)
            check(json.loads(r["text"]) == r["result"], "text %r vs result %r" % (r["text"], r["result"]))

    def bad_schemas():
        cases = [
            ({"type": "object", "properties": {"x": {"oneOf": [{}]}}}, "unsupported keyword 'oneOf' at $.properties.x"),
            ({"type": "string", "pattern": "(?=a)"}, "unsupported group"),
            ({"enum": list(range(5000))}, "over the limit"),
        ]
        for schema, needle in cases:
            st, _, r = srv.json("POST", "/v1/chat/completions", chat_body(schema))
            check(st == 400 and needle in r["error"]["message"], "%d %r" % (st, r))
        st, _, r = srv.json("POST", "/v1/chat/completions",
                            {"messages": [{"role": "user", "content": "x"}],
                             "response_format": {"type": "json_schema", "json_schema": {"name": "n"}}})
        check(st == 400 and "schema' is required" in r["error"]["message"], "%d %r" % (st, r))
        st, _, r = srv.json("POST", "/v1/chat/completions",
                            {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}})
        check(st == 400 and "not supported" in r["error"]["message"], "%d %r" % (st, r))
        st, _, _ = srv.json("POST", "/v1/chat/completions", chat_body(FINDINGS, max_tokens=4))
        check(st == 200, "the server still serves: %d" % st)

    def openai_sdk():
        try:
            import openai
        except ImportError:
            return
        client = openai.OpenAI(base_url=srv.url() + "/v1", api_key="x", max_retries=0, timeout=120)
        r = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "findings"}], max_tokens=96, temperature=1.0, seed=9,
            response_format={"type": "json_schema", "json_schema": {"name": "findings", "schema": FINDINGS,
                                                                    "strict": True}})
        if r.choices[0].finish_reason == "stop":
            jsonschema.validate(json.loads(r.choices[0].message.content), FINDINGS)

    res.case("http_grammar_chat_json_schema", chat_schema)
    res.case("http_grammar_stream_equals_plain", chat_stream_equals_plain)
    res.case("http_grammar_json_object", json_object)
    res.case("http_grammar_cut_by_max_tokens", cut_by_max_tokens)
    res.case("http_grammar_analyze_result", analyze_result_validates)
    res.case("http_grammar_bad_schemas", bad_schemas)
    res.case("http_grammar_openai_sdk", openai_sdk)
    srv.stop()
    res.finish()


if __name__ == "__main__":
    main()
