"""Caches across requests through the server (docs/caching.md), tiny model:
tenants (cache_salt, API key) never share an image embedding (the second
tenant's request is a miss in /metrics), a follow-up turn reports
usage.prompt_tokens_details.cached_tokens, and the answers equal those of a
server with MEDGEMMA_PREFIX_CACHE=0."""
import re

from http_fixture import Results, Server, check, png_b64, tiny_model

KEY = "cache-test-key"


def metric(srv, name):
    status, _, body = srv.request("GET", "/metrics", headers={"Authorization": "Bearer " + KEY})
    check(status == 200, "/metrics -> %d" % status)
    m = re.search(r"^%s (\d+)$" % re.escape(name), body.decode(), re.M)
    check(m is not None, "%s missing from /metrics" % name)
    return int(m.group(1))


def chat(srv, messages, salt=None, key=KEY, max_tokens=8):
    body = {"model": "tiny", "messages": messages, "max_tokens": max_tokens, "temperature": 0}
    if salt is not None:
        body["cache_salt"] = salt
    status, _, r = srv.json("POST", "/v1/chat/completions", body,
                            headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"},
                            timeout=120)
    check(status == 200, "chat -> %d %r" % (status, r))
    return r


def image_question(image, question):
    return [{"role": "user", "content": [
        {"type": "text", "text": question},
        {"type": "image_url", "image_url": {"url": image}}]}]


LONG = " ".join("Finding %d: a small nodule in segment %d, unchanged since the prior study." % (i, i % 8)
                for i in range(30))


def main():
    res = Results()
    model = tiny_model()
    on = Server(model, env={"MEDGEMMA_API_KEY": KEY}, args=["--max-context", "2048"]).wait_healthy()
    off = Server(model, env={"MEDGEMMA_API_KEY": KEY, "MEDGEMMA_PREFIX_CACHE": "0"},
                 args=["--max-context", "2048"]).wait_healthy()
    image = png_b64(48, 48, 7, data_uri=True)

    def tenants_never_share():
        m0, h0 = metric(on, "medgemma_image_cache_misses_total"), metric(on, "medgemma_image_cache_hits_total")
        a1 = chat(on, image_question(image, "Describe this X-ray."), salt="alice")
        check(metric(on, "medgemma_image_cache_misses_total") == m0 + 1, "first request: no miss")
        chat(on, image_question(image, "Any fracture?"), salt="alice")
        check(metric(on, "medgemma_image_cache_hits_total") == h0 + 1, "same tenant, same image: no hit")
        b1 = chat(on, image_question(image, "Describe this X-ray."), salt="bob")
        check(metric(on, "medgemma_image_cache_misses_total") == m0 + 2,
              "another cache_salt with the same image was not a miss")
        check(metric(on, "medgemma_image_cache_hits_total") == h0 + 1, "another tenant got a hit")
        chat(on, image_question(image, "Describe this X-ray."))  # no salt: the key's own namespace
        check(metric(on, "medgemma_image_cache_misses_total") == m0 + 3, "no salt shared an entry with a salt")
        check(a1["choices"][0]["message"]["content"] == b1["choices"][0]["message"]["content"],
              "the same request answered differently for two tenants")
        check(metric(on, "medgemma_image_cache_bytes") > 0, "no bytes held")

    def follow_up_reuses_the_prefix():
        turn1 = [{"role": "system", "content": "You are an expert radiologist. " + LONG},
                 {"role": "user", "content": "Summarize the findings."}]
        r1 = chat(on, turn1, salt="carol")
        r1_off = chat(off, turn1, salt="carol")
        text1 = r1["choices"][0]["message"]["content"]
        check(text1 == r1_off["choices"][0]["message"]["content"], "turn 1 differs with the cache off")
        check(r1["usage"]["prompt_tokens"] > 300, "prompt only %d tokens" % r1["usage"]["prompt_tokens"])
        turn2 = turn1 + [{"role": "assistant", "content": text1}, {"role": "user", "content": "Any change?"}]
        reused0 = metric(on, "medgemma_prefix_cache_reused_tokens_total")
        r2 = chat(on, turn2, salt="carol")
        r2_off = chat(off, turn2, salt="carol")
        cached = r2["usage"]["prompt_tokens_details"]["cached_tokens"]
        check(cached >= 256, "turn 2 reused %d tokens" % cached)
        check(metric(on, "medgemma_prefix_cache_reused_tokens_total") == reused0 + cached, "metric disagrees")
        check(r2_off["usage"]["prompt_tokens_details"]["cached_tokens"] == 0, "cache off reused tokens")
        check(r2["choices"][0]["message"]["content"] == r2_off["choices"][0]["message"]["content"],
              "turn 2 differs with the cache off")
        # another tenant sending the same conversation reuses nothing
        r3 = chat(on, turn2, salt="dave")
        check(r3["usage"]["prompt_tokens_details"]["cached_tokens"] == 0, "another tenant reused the prefix")
        check(metric(off, "medgemma_prefix_cache_enabled") == 0, "cache off server says enabled")
        check(metric(on, "medgemma_prefix_cache_enabled") == 1, "cache on server says disabled")

    def bad_salt():
        status, _, r = on.json("POST", "/v1/chat/completions",
                               {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "cache_salt": 5},
                               headers={"Authorization": "Bearer " + KEY})
        check(status == 400 and "cache_salt" in r["error"]["message"], "%d %r" % (status, r))

    res.case("cache_tenants_never_share_image_embeddings", tenants_never_share)
    res.case("cache_follow_up_reuses_prefix_same_answers_as_cache_off", follow_up_reuses_the_prefix)
    res.case("cache_salt_must_be_a_string", bad_salt)
    on.stop()
    off.stop()
    res.finish()


if __name__ == "__main__":
    main()
