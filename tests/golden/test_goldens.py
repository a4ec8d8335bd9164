#!/usr/bin/env python3
"""Checks the committed transformers goldens (tests/fixtures/golden) against the numpy reference
(tests/golden/reference.py) and the rules of tests/golden/README.md. numpy only.

Owner: tests/golden. Run by tests/run.sh; prints "ok NAME" / "FAIL NAME: why" per check.
A failure means the fixtures, the README's description of them, or the reference disagree.
"""
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402

REPO = os.environ.get("REPO_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOT = os.path.join(REPO, "tests", "fixtures", "golden")
SPECIAL = {0, 1, 2, 106, 500, 501, 502}
failures = 0


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def check(name, cond, why):
    global failures
    if cond:
        print("ok " + name)
    else:
        failures += 1
        print("FAIL %s: %s" % (name, why))


def bf16_rne(a):
    u = np.asarray(a, dtype=np.float32).view(np.uint32)
    r = ((u + ((u >> 16) & 1) + np.uint32(0x7FFF)) >> 16) << 16
    return r.astype(np.uint32).view(np.float32)


def check_case(case):
    d = os.path.join(ROOT, case)
    info = json.load(open(os.path.join(d, "case.json")))
    e = ref.load_safetensors(os.path.join(d, "expected.safetensors"))
    cfg, w = ref.load_model_dir(d)
    p = ref.text_params(cfg)
    T, H, L, V = info["T"], p["hidden"], p["layers"], p["vocab"]
    t = "golden_%s_" % case

    # Files: layout, dtypes, bf16 exactness, shapes.
    dtypes = {}
    for fn in ref.weight_files(d):
        dtypes.update(ref.safetensors_dtypes(os.path.join(d, fn)))
    want_dtype = info["weights_dtype_on_disk"]
    prefix = {"new": "model.language_model.", "old": "language_model.model.", "causal": "model."}[info["key_layout"]]
    check(t + "layout", all(k.startswith(prefix) or k.startswith(("model.vision_tower.vision_model.",
                                                                     "model.multi_modal_projector.", "lm_head.")
                                                                    if info["key_layout"] == "new" else
                                                                    ("vision_tower.vision_model.", "multi_modal_projector."))
                            for k in dtypes) and ("lm_head.weight" in dtypes) == info["has_lm_head_weight"],
          "keys do not follow the %s layout" % info["key_layout"])
    check(t + "dtype", set(dtypes.values()) == {want_dtype}, "dtypes %s, want %s" % (set(dtypes.values()), want_dtype))
    exact = all((v.astype(np.float32).view(np.uint32) & 0xFFFF == 0).all() for v in w.values())
    check(t + "bf16_exact", exact, "a weight is not bf16-representable")
    shapes_ok = (e["input_ids"].shape == (T,) and e["logits"].shape == (T, V)
                 and e["hidden_states"].shape == (L + 1, T, H) and e["greedy_ids"].shape == (16,)
                 and e["greedy_logits"].shape == (16, V) and w["lm.embed_tokens.weight"].shape == (V, H))
    check(t + "shapes", shapes_ok, "tensor shapes disagree with config.json / case.json")
    check(t + "layer_types", p["layer_types"] == info["layer_types"],
          "config.json gives %s, transformers used %s" % (p["layer_types"], info["layer_types"]))

    ids, tt = e["input_ids"], e["token_type_ids"]
    img_id = cfg.get("image_token_index")
    check(t + "token_types", ids[0] == 2 and ((tt == 1) == (ids == img_id)).all(),
          "token_type_ids must be 1 exactly at the image token, prompt must start with BOS")
    for lt, key in (("sliding_attention", "mask_sliding"), ("full_attention", "mask_full")):
        if key in e:
            m = ref.attention_mask(tt, lt, p["window"])
            check(t + key, (e[key].astype(bool) == m).all(), "transformers' mask differs from the README rule")

    feats = None
    if info["n_images"]:
        vis_last, vis_states, feats = [], [], []
        for img in e["pixel_values"].astype(np.float64):
            s, out = ref.vision_tower(cfg, w, img)
            vis_states.append(np.stack(s))
            vis_last.append(out)
            feats.append(ref.projector(cfg, w, out))
        check(t + "vision_hidden_states", rel(e["vision_hidden_states"], np.stack(vis_states)) < 1e-5,
              "rel err %.2e" % rel(e["vision_hidden_states"], np.stack(vis_states)))
        check(t + "vision_last_hidden", rel(e["vision_last_hidden"], np.stack(vis_last)) < 1e-5,
              "rel err %.2e" % rel(e["vision_last_hidden"], np.stack(vis_last)))
        feats = np.stack(feats)
        check(t + "image_features", rel(e["image_features"], feats) < 1e-5,
              "rel err %.2e" % rel(e["image_features"], feats))

    if info["transformers_run_dtype"] == "bfloat16":
        # Embedding step exact with the bf16-rounded sqrt(hidden); wrong with the fp32 one.
        E = w["lm.embed_tokens.weight"].astype(np.float32)
        s16 = float(bf16_rne(np.float32(math.sqrt(H))))
        good = bf16_rne(E[ids] * np.float32(s16))
        bad = bf16_rne(E[ids] * np.float32(math.sqrt(H)))
        check(t + "embed_scale_bf16", s16 == info["embed_scale_bf16"] and (good == e["hidden_states"][0]).all()
              and rel(e["hidden_states"][0], bad) > 1e-3,
              "hidden_states[0] is not embedding * bf16(sqrt(hidden)) rounded to bf16")
        logits, _, _ = ref.forward(cfg, w, ids, tt, feats, embed_scale=s16)
        check(t + "logits_loose", rel(e["logits"], logits) < 5e-2, "bf16 run vs fp64 rel err %.2e" % rel(e["logits"], logits))
        return

    logits, hs, last = ref.forward(cfg, w, ids, tt, feats)
    errs = [rel(e["hidden_states"][i], hs[i]) for i in range(L + 1)]
    check(t + "hidden_states", max(errs) < 1e-5, "per-layer rel errs %s" % ["%.1e" % x for x in errs])
    check(t + "last_layer_output", rel(e["last_layer_output"], last) < 1e-5,
          "rel err %.2e" % rel(e["last_layer_output"], last))
    check(t + "logits", rel(e["logits"], logits) < 1e-5, "rel err %.2e" % rel(e["logits"], logits))
    g, gl = ref.greedy(cfg, w, ids, tt, feats, 16)
    check(t + "greedy", g == e["greedy_ids"].tolist() and not (set(g) & SPECIAL),
          "reference %s vs golden %s" % (g, e["greedy_ids"].tolist()))
    check(t + "greedy_logits", rel(e["greedy_logits"], gl) < 1e-5, "rel err %.2e" % rel(e["greedy_logits"], gl))


def main():
    cases = sorted(c for c in os.listdir(ROOT) if os.path.isdir(os.path.join(ROOT, c)))
    check("golden_cases_present", {"text_long", "one_image", "two_images", "causal_lm", "old_layout",
                                   "bf16_scale"} <= set(cases), "cases found: %s" % cases)
    for case in cases:
        try:
            check_case(case)
        except Exception as ex:  # a broken fixture is a failure with a reason, not a crash
            check("golden_%s" % case, False, "%s: %s" % (type(ex).__name__, ex))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
