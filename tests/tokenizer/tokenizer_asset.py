"""Path of the unpacked Gemma 3 tokenizer.json: the vendored
assets/gemma3-tokenizer/tokenizer.json.xz unpacked once into the cache
($MEDGEMMA_CACHE/gemma3-tokenizer/), refreshed when the .xz is newer."""

import lzma
import os

REPO = os.environ.get("REPO_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tokenizer_json():
    src = os.path.join(REPO, "assets", "gemma3-tokenizer", "tokenizer.json.xz")
    cache = os.environ.get("MEDGEMMA_CACHE") or os.path.expanduser("~/.cache/medgemma-engine")
    out_dir = os.path.join(cache, "gemma3-tokenizer")
    out = os.path.join(out_dir, "tokenizer.json")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        os.makedirs(out_dir, exist_ok=True)
        tmp = out + ".part%d" % os.getpid()
        with lzma.open(src) as f, open(tmp, "wb") as g:
            g.write(f.read())
        os.replace(tmp, out)
    return out
