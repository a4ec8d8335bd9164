#!/usr/bin/env python3
"""Parity of the C tokenizer (build/medgemma tokenize) with Hugging Face
`tokenizers` on the real Gemma 3 tokenizer.json, over the corpus of
corpus.py (>= 2000 strings): ids with and without <bos>, decode of those ids
(with and without skip_special_tokens), decode of random id sequences (byte
pieces in any order, specials, out-of-range ids), the .xz path, and the
command's errors. Prints "ok NAME" / "FAIL NAME: why" per case."""

import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corpus import corpus  # noqa: E402
from tokenizer_asset import REPO, tokenizer_json  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
TOOL = os.path.join(REPO, BUILD, "medgemma")
failed = 0


def report(name, problems):
    global failed
    if problems:
        failed += 1
        print(f"FAIL {name}: {len(problems)} mismatches; first: {problems[0]}")
    else:
        print(f"ok {name}")


def run(args, stdin):
    p = subprocess.run([TOOL, "tokenize"] + args, input=stdin, capture_output=True, timeout=300)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def tool_lines(args, lines):
    rc, out, err = run(args, "".join(line + "\n" for line in lines).encode())
    if rc != 0:
        raise RuntimeError(f"medgemma tokenize {' '.join(args)} exited {rc}: {err.strip()[:300]}")
    got = out.split("\n")
    if got[-1] != "" or len(got) - 1 != len(lines):
        raise RuntimeError(f"expected {len(lines)} output lines, got {len(got) - 1}")
    return [json.loads(x) for x in got[:-1]]


def first_diff(g, w):
    i = next((k for k in range(min(len(g), len(w))) if g[k] != w[k]), min(len(g), len(w)))
    return f"at id {i}: got {g[max(0, i - 3):i + 5]} want {w[max(0, i - 3):i + 5]} (lengths {len(g)}, {len(w)})"


def short(s):
    return repr(s[:80]) + ("..." if len(s) > 80 else "")


def main():
    try:
        from tokenizers import Tokenizer
    except ImportError as e:
        print(f"FAIL tokenizer_parity: the reference package `tokenizers` is missing ({e}); run make deps")
        return 1

    if not os.access(TOOL, os.X_OK):
        print(f"FAIL tokenizer_parity: {TOOL} is missing; run make first")
        return 1
    path = tokenizer_json()
    hf = Tokenizer.from_file(path)
    texts = corpus()
    print(f"# corpus: {len(texts)} strings, {sum(len(t.encode()) for t in texts)} bytes", flush=True)
    json_lines = [json.dumps(t) for t in texts]

    all_ids = {}
    for bos in (True, False):
        name = "encode_ids_" + ("with_bos" if bos else "no_bos")
        try:
            got = tool_lines(["--tokenizer", path, "--jsonl"] + ([] if bos else ["--no-bos"]), json_lines)
        except RuntimeError as e:
            report(name, [str(e)])
            continue
        want = [e.ids for e in hf.encode_batch(texts, add_special_tokens=bos)]
        report(name + f" ({len(texts)} strings)",
               [f"{short(t)} {first_diff(g, w)}" for t, g, w in zip(texts, got, want) if g != w])
        all_ids[bos] = want

    # decode(encode(x)) equals HF's decode of the same ids.
    id_lists = all_ids.get(True, []) + all_ids.get(False, [])
    rng = random.Random(7)
    vocab = hf.get_vocab_size()
    byte_ids = [hf.token_to_id("<0x%02X>" % b) for b in range(256)]
    specials = [hf.token_to_id(s) for s in ("<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>", "<pad>",
                                            "<start_of_image>", "<image_soft_token>", "<unused94>")]
    randoms = []
    for i in range(600):
        seq = []
        for _ in range(rng.randint(0, 40)):
            k = rng.randrange(10)
            seq.append(rng.choice(byte_ids) if k < 4 else rng.choice(specials) if k < 6
                       else rng.randrange(vocab) if k < 9 else rng.choice([vocab, vocab + 63, 10**6]))
        randoms.append(seq)
    # Valid UTF-8 spelled in byte pieces, alone and between normal pieces.
    for ch in ["é", "€", "😀", "𝔸", "字"]:
        seq = [byte_ids[b] for b in ch.encode()]
        randoms += [seq, [9259] + seq + [9259], seq[:-1], seq[:-1] + [9259] + seq[-1:], seq + seq[:1]]
    for skip in (False, True):
        for label, lists in (("encoded", id_lists), ("random_ids", randoms)):
            name = f"decode_{label}{'_skip_special' if skip else ''} ({len(lists)} sequences)"
            try:
                got = tool_lines(["--tokenizer", path, "--decode"] + (["--skip-special"] if skip else []),
                                 [json.dumps(x) for x in lists])
            except RuntimeError as e:
                report(name, [str(e)])
                continue
            # HF rejects ids >= 2**32 only; ids past the vocab are dropped like ours.
            want = hf.decode_batch(lists, skip_special_tokens=skip)
            report(name, [f"{x[:10]}: got {short(g)} want {short(w)}" for x, g, w in zip(lists, got, want) if g != w])

    # Whole-stdin mode and the .xz path give the same ids.
    text = texts[100] + "\n" + texts[200]
    rc, out, err = run(["--tokenizer", os.path.join(REPO, "assets/gemma3-tokenizer/tokenizer.json.xz")],
                       text.encode())
    want = hf.encode(text).ids
    report("whole_stdin_from_xz_path", [] if rc == 0 and json.loads(out) == want else [f"rc {rc} {err[:200]}"])
    rc, out, err = run(["--tokenizer", os.path.dirname(path), "--no-bos"], text.encode())
    want = hf.encode(text, add_special_tokens=False).ids
    report("whole_stdin_from_model_dir", [] if rc == 0 and json.loads(out) == want else [f"rc {rc} {err[:200]}"])

    # Errors: a clear message and exit status 1, never a crash.
    cases = [
        ("invalid_utf8", ["--tokenizer", path], b"ab\xff\xfecd", "not valid UTF-8 at byte offset 2"),
        ("jsonl_not_a_string", ["--tokenizer", path, "--jsonl"], b'"ok"\n[1,2]\n', "line 2 is not one JSON string"),
        ("decode_not_ids", ["--tokenizer", path, "--decode"], b'[1, "a"]\n', "line 1 is not a JSON array"),
        ("missing_file", ["--tokenizer", "/nonexistent/tokenizer.json"], b"", "cannot open /nonexistent"),
        ("not_a_tokenizer", ["--tokenizer", os.path.join(REPO, "assets/gemma3-tokenizer/tokenizer_config.json")],
         b"", "not supported"),
    ]
    for name, args, stdin, want_msg in cases:
        rc, out, err = run(args, stdin)
        report("error_" + name, [] if rc == 1 and want_msg in err else [f"rc {rc}, stderr {err.strip()[:200]!r}"])
    rc, out, err = run([], b"")
    report("error_usage", [] if rc == 2 and "--tokenizer FILE is required" in err else [f"rc {rc} {err[:200]}"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
