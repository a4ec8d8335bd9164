"""The official `openai` Python package against /v1: models.list, chat
completions with an image, streamed and not (same seed, same text), and an
API error surfacing as the SDK's exception."""
import sys

from http_fixture import Results, Server, check, png_b64, tiny_model


def main():
    res = Results()
    try:
        import openai
    except ImportError:
        res.skip("openai_sdk", "the openai package is not installed (pip install -r tests/requirements.txt)")
        res.finish()
        return
    model = tiny_model()
    key = "test-key-42"
    srv = Server(model, env={"MEDGEMMA_API_KEY": key}, args=["--max-context", "1024"]).wait_healthy()
    client = openai.OpenAI(base_url=srv.url() + "/v1", api_key=key, max_retries=0, timeout=120)
    messages = [{"role": "system", "content": "You are an expert radiologist."},
                {"role": "user", "content": [
                    {"type": "text", "text": "Describe this X-ray."},
                    {"type": "image_url", "image_url": {"url": png_b64(48, 48, 5, data_uri=True)}}]}]

    def models():
        ids = [m.id for m in client.models.list()]
        check(ids == ["tiny"], "models %r" % ids)

    state = {}

    def chat():
        r = client.chat.completions.create(model="tiny", messages=messages, max_tokens=10, temperature=0.7, seed=11)
        check(r.object == "chat.completion", "object %r" % r.object)
        check(r.choices[0].message.role == "assistant", "role %r" % r.choices[0].message.role)
        check(isinstance(r.choices[0].message.content, str), "content %r" % r.choices[0].message.content)
        check(r.choices[0].finish_reason in ("stop", "length"), "finish %r" % r.choices[0].finish_reason)
        check(r.usage.prompt_tokens > 256 // 4 and r.usage.completion_tokens <= 10, "usage %r" % r.usage)
        state["text"] = r.choices[0].message.content

    def chat_stream():
        stream = client.chat.completions.create(model="tiny", messages=messages, max_tokens=10, temperature=0.7,
                                                seed=11, stream=True)
        text, finish, n = "", None, 0
        for chunk in stream:
            n += 1
            for c in chunk.choices:
                text += c.delta.content or ""
                finish = c.finish_reason or finish
        check(n >= 2 and finish in ("stop", "length"), "%d chunks, finish %r" % (n, finish))
        check(text == state.get("text"), "streamed %r != non-streamed %r" % (text, state.get("text")))

    def errors():
        try:
            client.chat.completions.create(model="tiny", messages=[], max_tokens=2)
            raise AssertionError("empty messages accepted")
        except openai.BadRequestError as e:
            check(e.status_code == 400 and "messages" in str(e), "%r" % e)
        bad = openai.OpenAI(base_url=srv.url() + "/v1", api_key="wrong", max_retries=0)
        try:
            bad.models.list()
            raise AssertionError("wrong key accepted")
        except openai.AuthenticationError as e:
            check(e.status_code == 401, "%r" % e)

    res.case("openai_models_list", models)
    res.case("openai_chat_with_image", chat)
    res.case("openai_chat_stream_equals_non_stream", chat_stream)
    res.case("openai_errors_map_to_sdk_exceptions", errors)
    res.case("openai_server_exit_0", lambda: check(srv.stop() == 0, "exit status after SIGTERM; log: " + srv.log_tail(5)))
    res.finish()


if __name__ == "__main__":
    sys.exit(main())
