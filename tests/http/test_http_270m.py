"""The README's "run it" path: with no GPU and no token, `serve` on the real
Gemma 3 270M (prepared by `make models`) answers text requests with real
English on the CPU backend, and refuses images with a clear 400 (the model
has no vision tower)."""
import os

from http_fixture import Results, Server, check, png_b64

MODEL = os.path.join(os.environ.get("MEDGEMMA_CACHE", os.path.expanduser("~/.cache/medgemma-engine")),
                     "gemma3-270m")


def main():
    res = Results()
    if not os.path.exists(os.path.join(MODEL, "config.json")):
        res.skip("serve_gemma3_270m", "the converted Gemma 3 270M is missing at %s: run `make models`" % MODEL)
        res.finish()
        return
    srv = Server(MODEL, args=["--backend", "cpu", "--max-context", "1024"], threads=2).wait_healthy()

    def health():
        status, _, b = srv.json("GET", "/health")
        check(status == 200 and b["backend"] == "cpu" and b["vision"] is False, "%r" % b)

    def english(text):
        """Real weights write English here; random ones write a mix of scripts."""
        letters = [c for c in text if c.isalpha()]
        ascii_share = sum(c.isascii() for c in letters) / max(1, len(letters))
        words = set(w.strip(".,!?:;\"'").lower() for w in text.split())
        common = words & {"the", "is", "of", "a", "and", "in", "to", "what", "capital", "france", "paris",
                          "planet", "city", "name", "largest", "solar", "system", "it", "that"}
        check(len(letters) >= 10 and ascii_share > 0.9 and len(common) >= 2,
              "not English: %r (ascii share %.2f, common words %r)" % (text, ascii_share, common))

    def real_answer():
        body = {"prompt": "What is the capital of France? Answer with the city name.", "max_tokens": 24}
        status, _, b = srv.json("POST", "/generate", body)
        check(status == 200, "%d %r" % (status, b))
        english(b["text"])
        again = srv.json("POST", "/generate", body)[2]
        check(again["text"] == b["text"], "greedy answers differ: %r vs %r" % (b["text"], again["text"]))

    def chat_answer():
        status, _, b = srv.json("POST", "/v1/chat/completions",
                                {"messages": [{"role": "user", "content": "Name the largest planet in the solar system."}],
                                 "max_tokens": 24})
        check(status == 200, "%d %r" % (status, b))
        english(b["choices"][0]["message"]["content"])

    def image_refused():
        status, _, b = srv.json("POST", "/analyze", {"prompt": "Describe.", "images": [png_b64()]})
        check(status == 400 and "vision" in b["error"]["message"], "%d %r" % (status, b))

    res.case("serve_270m_health_cpu_text_only", health)
    res.case("serve_270m_generate_real_english", real_answer)
    res.case("serve_270m_chat_real_english", chat_answer)
    res.case("serve_270m_image_request_400", image_refused)
    res.case("serve_270m_exit_0", lambda: check(srv.stop() == 0, "exit status after SIGTERM"))
    res.finish()


if __name__ == "__main__":
    main()
