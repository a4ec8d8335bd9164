#!/usr/bin/env python3
"""Builds the transformers goldens in tests/fixtures/golden/<case>/ (see tests/golden/README.md).

Owner: tests/golden. Needs torch + transformers (NOT installed in CI: the outputs are committed).
Run from the repo root:  python3 tests/golden/make_goldens.py [case ...]

Each case is a small random Gemma 3 model that keeps every structural feature of MedGemma
(local + global layers, sliding window smaller than the prompt, GQA, SigLIP + pooled projector).
All weights are exactly bf16-representable, so an engine that stores bf16 sees the same numbers
transformers saw in fp32. Every fp32 case uses a hidden size whose sqrt is exact in bf16 (8, 6),
so the embedding scale is the same whether it is rounded to bf16 (as transformers does for bf16
weights) or not; the `bf16_scale` case is the one where it differs.

Flow per case: build config + random weights -> write config.json and safetensors in the case's key
layout/dtype/sharding -> load them back with from_pretrained (asserting no missing/unexpected keys
and identical parameters) -> run that loaded model (fp32, eager attention, CPU) -> expected.safetensors.
"""
import json
import math
import os
import sys

import numpy as np
import torch
from safetensors.numpy import load_file as np_load_file
from safetensors.numpy import save_file as np_save_file
from safetensors.torch import save_file as torch_save_file
from transformers import (
    Gemma3Config,
    Gemma3ForCausalLM,
    Gemma3ForConditionalGeneration,
    Gemma3TextConfig,
    GenerationConfig,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_ROOT = os.path.join(REPO, "tests", "fixtures", "golden")

# Special ids inside the small vocab (the real ones are 255999 / 256000 / 262144).
PAD, EOS, BOS, EOT, NL2 = 0, 1, 2, 106, 108
BOI, EOI, IMG = 500, 501, 502
VOCAB = 512
MIN_MARGIN = 0.05  # smallest allowed gap between the top-1 and top-2 logit at a greedy step
N_GREEDY = 16
# Greedy continuations must not contain these (the engine stops on 1 and 106 by default).
FORBIDDEN_GREEDY = {PAD, EOS, BOS, EOT, BOI, EOI, IMG}

VISION = dict(
    model_type="siglip_vision_model",
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    image_size=64,
    patch_size=8,
    layer_norm_eps=1e-6,
    vision_use_head=False,
)

CASES = {
    # Text-only prompt 2.5x the window through the full multimodal model; decode crosses the window again.
    "text_long": dict(
        arch="cg", layout="new", shards=1, store="bf16", lm_head=False, config_form="v5",
        text=dict(hidden_size=64, intermediate_size=64, num_hidden_layers=7, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=24, sliding_window=16),
        prompt=[("text", 39)], seed=1),
    # One image, sharded checkpoint with lm_head.weight, head_dim != hidden/heads, no layer_types in config.
    "one_image": dict(
        arch="cg", layout="new", shards=2, store="bf16", lm_head=True, config_form="v5_no_layer_types",
        text=dict(hidden_size=64, intermediate_size=64, num_hidden_layers=7, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=24, query_pre_attn_scalar=20, sliding_window=16),
        prompt=[("text", 6), ("image", 0), ("text", 12)], seed=2),
    # Two images: each soft-token block bidirectional only within itself.
    "two_images": dict(
        arch="cg", layout="new", shards=1, store="bf16", lm_head=False, config_form="v5",
        text=dict(hidden_size=64, intermediate_size=64, num_hidden_layers=7, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=24, sliding_window=16),
        prompt=[("text", 4), ("image", 0), ("text", 5), ("image", 1), ("text", 9)], seed=3),
    # Text-only Gemma3ForCausalLM (model.layers.*), stored in F32, explicit non-default layer_types, MQA.
    "causal_lm": dict(
        arch="causal", layout="causal", shards=1, store="f32", lm_head=False, config_form="v5",
        text=dict(hidden_size=36, intermediate_size=64, num_hidden_layers=8, num_attention_heads=4,
                  num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=48, sliding_window=12,
                  layer_types=["sliding_attention", "sliding_attention", "full_attention",
                               "sliding_attention", "sliding_attention", "sliding_attention",
                               "sliding_attention", "full_attention"]),
        prompt=[("text", 35)], seed=4),
    # Old (transformers 4.50 hub) key layout and old config form (rope_scaling/rope_theta/
    # rope_local_base_freq/sliding_window_pattern, no layer_types, no rope_parameters).
    "old_layout": dict(
        arch="cg", layout="old", shards=1, store="bf16", lm_head=False, config_form="old",
        text=dict(hidden_size=64, intermediate_size=64, num_hidden_layers=7, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=24, sliding_window=16),
        prompt=[("text", 5), ("image", 0), ("text", 10)], seed=5),
    # transformers run in bfloat16; sqrt(76) = 8.7178 rounds to 8.6875 in bf16.
    "bf16_scale": dict(
        arch="causal", layout="causal", shards=1, store="bf16", lm_head=False, config_form="v5",
        text=dict(hidden_size=76, intermediate_size=64, num_hidden_layers=7, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16, sliding_window=16),
        prompt=[("text", 23)], seed=6, run_dtype="bf16"),
}


def bf16_round(t):
    return t.to(torch.bfloat16).to(torch.float32)


def text_config_dict(case):
    t = dict(case["text"])
    t.update(vocab_size=VOCAB, rms_norm_eps=1e-6, max_position_embeddings=4096,
             rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                              "full_attention": {"rope_type": "linear", "factor": 8.0,
                                                 "rope_theta": 1000000.0}},
             pad_token_id=PAD, eos_token_id=EOS, bos_token_id=BOS, tie_word_embeddings=True)
    return t


def build_config(case):
    t = text_config_dict(case)
    if case["arch"] == "causal":
        cfg = Gemma3TextConfig(**t)
        cfg.architectures = ["Gemma3ForCausalLM"]
    else:
        cfg = Gemma3Config(text_config=t, vision_config=dict(VISION), mm_tokens_per_image=16,
                           boi_token_index=BOI, eoi_token_index=EOI, image_token_index=IMG,
                           tie_word_embeddings=True)
        cfg.architectures = ["Gemma3ForConditionalGeneration"]
    cfg.dtype = "float32" if case["store"] == "f32" else "bfloat16"
    return cfg


def init_weights(model, seed):
    """Random, bf16-exact weights with useful magnitudes (softmax/greedy far from ties)."""
    g = torch.Generator().manual_seed(seed)

    def randn(shape):
        return torch.randn(shape, generator=g)

    with torch.no_grad():
        for name, p in model.named_parameters():
            shape = p.shape
            is_siglip = "vision_tower" in name
            if name.endswith("embed_tokens.weight"):
                v = randn(shape) / math.sqrt(shape[1])  # rows of rms 1 after the sqrt(hidden) scale
            elif name.endswith("lm_head.weight"):
                continue  # tied: equals embed_tokens
            elif is_siglip and ("layer_norm" in name or "layernorm" in name):
                v = (1.0 + 0.2 * randn(shape)) if name.endswith("weight") else 0.1 * randn(shape)
            elif "norm" in name:  # Gemma RMSNorm weights, stored as (scale - 1)
                v = 2.0 * torch.rand(shape, generator=g) - 0.5  # scale (1 + w) in [0.5, 2.5]
            elif name.endswith("position_embedding.weight"):
                v = 0.5 * randn(shape)
            elif name.endswith("patch_embedding.weight"):
                v = randn(shape) / math.sqrt(shape[1] * shape[2] * shape[3])
            elif name.endswith("mm_input_projection_weight"):
                v = 3.0 * randn(shape) / math.sqrt(shape[0])
            elif name.endswith("bias"):
                v = 0.1 * randn(shape)
            elif p.dim() == 2:
                v = randn(shape) / math.sqrt(shape[1])
            else:
                raise RuntimeError("no init rule for " + name)
            p.copy_(bf16_round(v))
        if hasattr(model, "lm_head"):
            model.lm_head.weight = model.get_input_embeddings().weight


def rename(key, layout):
    """Maps transformers 5's in-memory names to the checkpoint key layouts of MODEL.md."""
    if layout == "causal":
        return key  # model.layers.*, model.embed_tokens.weight, model.norm.weight
    if key.startswith("model.vision_tower."):
        key = "model.vision_tower.vision_model." + key[len("model.vision_tower."):]
    if layout == "new":
        return key
    assert layout == "old"
    for a, b in (("model.language_model.", "language_model.model."),
                 ("model.vision_tower.vision_model.", "vision_tower.vision_model."),
                 ("model.multi_modal_projector.", "multi_modal_projector.")):
        if key.startswith(a):
            return b + key[len(a):]
    raise RuntimeError("unmapped key " + key)


def write_checkpoint(model, cfg, case, out):
    sd = {}
    for k, v in model.state_dict().items():
        if k == "lm_head.weight" and not case["lm_head"]:
            continue
        v = v.detach().clone().contiguous()
        v = v.to(torch.float32) if case["store"] == "f32" else v.to(torch.bfloat16)
        sd[rename(k, case["layout"])] = v
    keys = sorted(sd)
    if case["shards"] == 1:
        torch_save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    else:
        n = case["shards"]
        weight_map, total = {}, 0
        per = math.ceil(len(keys) / n)
        for i in range(n):
            fname = "model-%05d-of-%05d.safetensors" % (i + 1, n)
            part = {k: sd[k] for k in keys[i * per:(i + 1) * per]}
            torch_save_file(part, os.path.join(out, fname), metadata={"format": "pt"})
            for k, v in part.items():
                weight_map[k] = fname
                total += v.numel() * v.element_size()
        with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    # config.json as save_pretrained writes it, then the case's variations.
    cfg.save_pretrained(out)
    path = os.path.join(out, "config.json")
    with open(path) as f:
        j = json.load(f)
    tj = j["text_config"] if case["arch"] == "cg" else j
    if case["config_form"] == "v5_no_layer_types":
        del tj["layer_types"]
    elif case["config_form"] == "old":
        del tj["layer_types"]
        del tj["rope_parameters"]
        tj.pop("_sliding_window_pattern", None)
        tj["sliding_window_pattern"] = 6
        tj["rope_scaling"] = {"factor": 8.0, "rope_type": "linear"}
        tj["rope_theta"] = 1000000.0
        tj["rope_local_base_freq"] = 10000.0
        j["transformers_version"] = "4.50.0.dev0"
    with open(path, "w") as f:
        json.dump(j, f, indent=2, sort_keys=True)
        f.write("\n")
    return sd


def build_prompt(case, rng, mm_tokens):
    ids, types, images = [BOS], [0], []
    allowed = np.array([i for i in range(3, 500) if i not in (EOT, NL2)])
    for kind, n in case["prompt"]:
        if kind == "text":
            ids += [int(x) for x in rng.choice(allowed, size=n)]
            types += [0] * n
        else:
            ids += [NL2, BOI] + [IMG] * mm_tokens + [EOI, NL2]
            types += [0, 0] + [1] * mm_tokens + [0, 0]
            images.append(n)
    return ids, types, len(images)


def load_back(case, out, dtype):
    cls = Gemma3ForCausalLM if case["arch"] == "causal" else Gemma3ForConditionalGeneration
    model, info = cls.from_pretrained(out, output_loading_info=True, dtype=dtype,
                                      attn_implementation="eager")
    for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        assert not info[k], (out, k, info[k])
    return model.eval()


def expected_masks(types, layer_type, window):
    """The prefill mask this project documents (README): True = may attend."""
    t = np.asarray(types)
    T = len(t)
    block = np.full(T, -1)
    b = -1
    for i in range(T):
        if t[i] == 1 and (i == 0 or t[i - 1] != 1):
            b += 1
        if t[i] == 1:
            block[i] = b
    q = np.arange(T)[:, None]
    k = np.arange(T)[None, :]
    same = (block[:, None] == block[None, :]) & (block[:, None] >= 0)
    allowed = (k <= q) | same
    if layer_type == "sliding_attention":
        allowed &= k > q - window
    return allowed


def make_case(name, case):
    out = os.path.join(OUT_ROOT, name)
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.remove(os.path.join(out, f))
    run_bf16 = case.get("run_dtype") == "bf16"
    cfg = build_config(case)
    torch.manual_seed(case["seed"])
    src = (Gemma3ForCausalLM if case["arch"] == "causal" else Gemma3ForConditionalGeneration)(cfg)
    init_weights(src, case["seed"])
    write_checkpoint(src, cfg, case, out)

    model = load_back(case, out, torch.bfloat16 if run_bf16 else torch.float32)
    src_sd = src.state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v.float(), src_sd[k].float()), ("weight changed on reload", k)
    tcfg = model.config.get_text_config()
    want = text_config_dict(case)
    want_types = want.get("layer_types") or [
        "full_attention" if i % 6 == 5 else "sliding_attention" for i in range(want["num_hidden_layers"])]
    assert list(tcfg.layer_types) == want_types, tcfg.layer_types
    assert tcfg.rope_parameters["full_attention"]["rope_type"] == "linear"
    assert tcfg.rope_parameters["full_attention"]["factor"] == 8.0
    assert tcfg.rope_parameters["full_attention"]["rope_theta"] == 1e6
    assert tcfg.rope_parameters["sliding_attention"]["rope_theta"] == 1e4
    assert tcfg.rope_parameters["sliding_attention"]["rope_type"] == "default"
    assert tcfg.head_dim == case["text"]["head_dim"]
    assert tcfg.query_pre_attn_scalar == case["text"]["query_pre_attn_scalar"]

    mm_tokens = 16
    S = VISION["image_size"]
    gcfg = GenerationConfig(do_sample=False, max_new_tokens=N_GREEDY, min_new_tokens=0,
                            eos_token_id=None, pad_token_id=PAD, bos_token_id=BOS,
                            output_logits=True, return_dict_in_generate=True)
    # Pick the first prompt (by seed) whose greedy continuation avoids special ids and has a clear
    # top-1 margin at every step, so a correct engine cannot flip a near-tie.
    for attempt in range(50):
        prompt_seed = case["seed"] * 1000 + attempt
        rng = np.random.default_rng(prompt_seed)
        ids, types, n_img = build_prompt(case, rng, mm_tokens)
        T = len(ids)
        input_ids = torch.tensor([ids])
        tti = torch.tensor([types])
        pixel_values = None
        if n_img:
            g = torch.Generator().manual_seed(prompt_seed)
            pixel_values = torch.rand((n_img, 3, S, S), generator=g) * 2 - 1
        gen_kw = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
        if case["arch"] == "cg":
            gen_kw.update(token_type_ids=tti)
            if n_img:
                gen_kw.update(pixel_values=pixel_values)
        with torch.no_grad():
            g = model.generate(**gen_kw, generation_config=gcfg)
        glogits = torch.stack([x[0].float() for x in g.logits])
        top2 = glogits.topk(2, dim=-1).values
        margin = (top2[:, 0] - top2[:, 1]).min().item()
        if margin > MIN_MARGIN and not set(g.sequences[0, T:].tolist()) & FORBIDDEN_GREEDY:
            break
    else:
        raise RuntimeError("no prompt with a clean greedy continuation for " + name)

    def forward(inp, tt, pv, **kw):
        args = dict(input_ids=inp, attention_mask=torch.ones_like(inp))
        if case["arch"] == "cg":
            args.update(token_type_ids=tt)
            if pv is not None:
                args.update(pixel_values=pv)
        return model(**args, **kw)

    # Capture the masks the layers actually receive.
    masks = {}
    hooks = []
    for i, layer in enumerate(model.model.language_model.layers if case["arch"] == "cg" else model.model.layers):
        lt = tcfg.layer_types[i]
        if lt in masks:
            continue
        masks[lt] = None

        def hook(mod, args, kwargs, lt=lt):
            masks[lt] = kwargs["attention_mask"].detach().clone()
        hooks.append(layer.register_forward_pre_hook(hook, with_kwargs=True))
    last_layer = (model.model.language_model.layers if case["arch"] == "cg" else model.model.layers)[-1]
    pre_norm = {}
    hooks.append(last_layer.register_forward_hook(lambda m, a, o: pre_norm.setdefault("x", o)))

    with torch.no_grad():
        outp = forward(input_ids, tti, pixel_values, output_hidden_states=True)
    for h in hooks:
        h.remove()
    logits = outp.logits[0].float()
    hs = torch.stack([h[0].float() for h in outp.hidden_states])  # [L+1, T, H]
    L = tcfg.num_hidden_layers
    assert hs.shape == (L + 1, T, tcfg.hidden_size)
    last_pre_norm = (pre_norm["x"][0] if isinstance(pre_norm["x"], tuple) else pre_norm["x"])[0].float()
    # Check what the hidden_states tuple is: [0] = scaled embeddings (+ image rows), [L] = final norm.
    norm = model.model.language_model.norm if case["arch"] == "cg" else model.model.norm
    with torch.no_grad():
        assert torch.equal(norm(last_pre_norm.to(hs.dtype if not run_bf16 else torch.bfloat16)).float(), hs[L])
        emb = model.get_input_embeddings()
        text_rows = torch.tensor([t == 0 for t in types])
        e0 = emb(input_ids)[0].float()
        assert torch.equal(e0[text_rows], hs[0][text_rows])

    # Mask check against the documented rule.
    for lt, m in masks.items():
        m = m[0, 0]
        allowed = (m == 0).numpy() if m.dtype != torch.bool else m.numpy()
        want_m = expected_masks(types, lt, tcfg.sliding_window)
        assert allowed.shape == (T, T) and (allowed == want_m).all(), ("mask differs from README rule", name, lt)

    tensors = {
        "input_ids": np.array(ids, dtype=np.int64),
        "token_type_ids": np.array(types, dtype=np.int64),
        "logits": logits.numpy().astype(np.float32),
        "hidden_states": hs.numpy().astype(np.float32),
        "last_layer_output": last_pre_norm.numpy().astype(np.float32),
    }
    for lt, m in masks.items():
        tensors["mask_" + ("sliding" if lt == "sliding_attention" else "full")] = \
            expected_masks(types, lt, tcfg.sliding_window).astype(np.float32)

    if n_img:
        with torch.no_grad():
            vis = model.model.get_image_features(pixel_values, return_dict=True, output_hidden_states=True)
        feats = vis.pooler_output.float()
        assert feats.shape == (n_img, mm_tokens, tcfg.hidden_size)
        img_rows = torch.tensor([t == 1 for t in types])
        assert torch.equal(hs[0][img_rows], feats.reshape(-1, tcfg.hidden_size)), "image rows != projector out"
        vhs = torch.stack(list(vis.hidden_states), dim=1).float()  # [n_img, Lv+1, P, Hv]
        with torch.no_grad():  # the last entry is the encoder output BEFORE post_layernorm
            post_ln = model.model.vision_tower.post_layernorm(vis.hidden_states[-1]).float()
        assert torch.equal(post_ln, vis.last_hidden_state.float())
        tensors["pixel_values"] = pixel_values.numpy().astype(np.float32)
        tensors["image_features"] = feats.numpy()
        tensors["vision_last_hidden"] = vis.last_hidden_state.float().numpy()
        tensors["vision_hidden_states"] = vhs.numpy()
        # The images must matter: change the pixels, the logits must move.
        with torch.no_grad():
            other = forward(input_ids, tti, -pixel_values).logits[0].float()
        rel = ((other - logits).norm() / logits.norm()).item()
        assert rel > 1e-2, ("image has almost no effect on logits", rel)

    # Greedy continuation (generate() above), cross-checked by full recomputation without a cache.
    greedy = g.sequences[0, T:]
    assert greedy.numel() == N_GREEDY, greedy
    assert torch.equal(glogits.argmax(-1), greedy)
    with torch.no_grad():
        seq = torch.cat([input_ids, greedy[None, :-1]], dim=1)
        tt2 = torch.cat([tti, torch.zeros((1, N_GREEDY - 1), dtype=tti.dtype)], dim=1)
        full = forward(seq, tt2, pixel_values).logits[0, T - 1:].float()
    assert torch.equal(full.argmax(-1), greedy), "cache-free recomputation disagrees with generate()"
    recompute_rel = ((full - glogits).norm() / glogits.norm()).item()
    assert recompute_rel < (2e-2 if run_bf16 else 1e-5), recompute_rel
    first_rel = ((glogits[0] - logits[-1]).norm() / logits[-1].norm()).item()
    assert first_rel <= (2e-2 if run_bf16 else 1e-5), first_rel
    tensors["greedy_ids"] = greedy.numpy().astype(np.int64)
    tensors["greedy_logits"] = glogits.numpy().astype(np.float32)

    run_dtype = "bfloat16" if run_bf16 else "float32"
    # One metadata key only: safetensors writes a multi-key map in random order (not reproducible).
    np_save_file(tensors, os.path.join(out, "expected.safetensors"),
                 metadata={"golden": "%s; transformers run in %s" % (name, run_dtype)})

    info = {
        "case": name,
        "architecture": cfg.architectures[0],
        "key_layout": case["layout"],
        "weights_dtype_on_disk": "F32" if case["store"] == "f32" else "BF16",
        "sharded": case["shards"] > 1,
        "has_lm_head_weight": case["lm_head"],
        "config_form": case["config_form"],
        "transformers_run_dtype": run_dtype,
        "embed_scale_fp32": math.sqrt(tcfg.hidden_size),
        "embed_scale_bf16": float(torch.tensor(math.sqrt(tcfg.hidden_size)).to(torch.bfloat16)),
        "T": T,
        "n_images": n_img,
        "image_token_id": IMG if n_img or case["arch"] == "cg" else None,
        "layer_types": list(tcfg.layer_types),
        "sliding_window": tcfg.sliding_window,
        "greedy_min_top1_margin": round(margin, 4),
        "prompt_seed": prompt_seed,
        "greedy_cache_free_recompute_rel_err": recompute_rel,
        "tensors": {k: [list(v.shape), str(v.dtype)] for k, v in tensors.items()},
    }
    if run_bf16:
        e = hs[0]
        scale_bf16 = info["embed_scale_bf16"]
        w = model.get_input_embeddings().weight.float()[input_ids[0]]
        exact = bf16_round(w * scale_bf16)
        unrounded = bf16_round(w * math.sqrt(tcfg.hidden_size))
        info["hs0_rel_err_with_bf16_scale"] = ((exact - e).norm() / e.norm()).item()
        info["hs0_rel_err_with_fp32_scale"] = ((unrounded - e).norm() / e.norm()).item()
        info["hs0_rel_err_with_fp32_scale_unrounded_product"] = \
            ((w * math.sqrt(tcfg.hidden_size) - e).norm() / e.norm()).item()
        assert info["hs0_rel_err_with_bf16_scale"] == 0.0
        assert info["hs0_rel_err_with_fp32_scale"] > 1e-3
    with open(os.path.join(out, "case.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    return out


def self_check(out):
    """Reads everything back with numpy only, as the CI side will."""
    e = np_load_file(os.path.join(out, "expected.safetensors"))
    info = json.load(open(os.path.join(out, "case.json")))
    cfg = json.load(open(os.path.join(out, "config.json")))
    tc = cfg.get("text_config", cfg)
    T, H = info["T"], tc["hidden_size"]
    L = tc["num_hidden_layers"]
    assert e["input_ids"].shape == (T,) and e["input_ids"].dtype == np.int64
    assert e["logits"].shape == (T, VOCAB) and e["logits"].dtype == np.float32
    assert e["hidden_states"].shape == (L + 1, T, H)
    assert e["greedy_ids"].shape == (N_GREEDY,) and e["greedy_logits"].shape == (N_GREEDY, VOCAB)
    assert np.isfinite(e["logits"]).all() and np.isfinite(e["hidden_states"]).all()
    if info["n_images"]:
        assert e["pixel_values"].shape == (info["n_images"], 3, 64, 64)
        assert e["image_features"].shape == (info["n_images"], 16, H)
        assert e["vision_last_hidden"].shape == (info["n_images"], 64, VISION["hidden_size"])
    if os.path.exists(os.path.join(out, "model.safetensors.index.json")):
        idx = json.load(open(os.path.join(out, "model.safetensors.index.json")))
        files = sorted(set(idx["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    n = 0
    for fn in files:
        if info["weights_dtype_on_disk"] == "F32":
            for k, v in np_load_file(os.path.join(out, fn)).items():
                assert v.dtype == np.float32
                assert (v.view(np.uint32) & 0xFFFF == 0).all(), ("not bf16-exact", k)
                n += 1
        else:
            n += len(json_header_names(os.path.join(out, fn)))
    return n


def json_header_names(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        h = json.loads(f.read(n))
    for k, v in h.items():
        if k != "__metadata__":
            assert v["dtype"] == "BF16", (path, k, v["dtype"])
    return [k for k in h if k != "__metadata__"]


def main():
    torch.set_num_threads(1)
    names = sys.argv[1:] or list(CASES)
    for name in names:
        out = make_case(name, CASES[name])
        n = self_check(out)
        size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
        print("%-12s ok: %d weight tensors, %.0f KB" % (name, n, size / 1024))
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT_ROOT) for f in fs)
    print("tests/fixtures/golden: %.2f MB" % (total / 1e6))


if __name__ == "__main__":
    main()
