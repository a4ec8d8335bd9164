#!/usr/bin/env python3
"""How far transformers itself lands from the fp32 goldens when it runs in bf16:
the error envelope a correct bf16 engine (the CUDA backend) can be held to.
Needs torch + transformers (not CI). Run from the repo root:
    python3 tests/gpu/emu/bf16_envelope.py
Per case: prefill logits and worst hidden state (rel. L2), vision output and image
features, and 16 teacher-forced greedy steps (worst rel. err., argmax flips).
Then "gemm-in": fp32 everywhere except bf16-rounded inputs of every Linear.
tests/gpu/gpu_golden.c takes its tolerances from these numbers."""
import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import AutoModelForCausalLM, Gemma3ForConditionalGeneration

CASES = ["text_long", "one_image", "two_images", "causal_lm", "old_layout", "bf16_scale"]


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def load(case, dtype):
    d = f"tests/fixtures/golden/{case}"
    cls = Gemma3ForConditionalGeneration if "vision_config" in open(f"{d}/config.json").read() else AutoModelForCausalLM
    return cls.from_pretrained(d, dtype=dtype).eval(), load_file(f"{d}/expected.safetensors")


def inputs(exp, extra, dtype):
    ids = np.concatenate([exp["input_ids"], extra])
    kw = {"input_ids": torch.tensor(ids)[None]}
    if "pixel_values" in exp:
        tt = np.concatenate([exp["token_type_ids"], np.zeros(len(extra), dtype=np.int64)])
        kw.update(pixel_values=torch.tensor(exp["pixel_values"]).to(dtype), token_type_ids=torch.tensor(tt)[None])
    return kw


def main():
    for case in CASES:
        m, exp = load(case, torch.bfloat16)
        T = len(exp["input_ids"])
        with torch.no_grad():
            out = m(**inputs(exp, exp["greedy_ids"][:15], torch.bfloat16), output_hidden_states=True)
        lg = out.logits[0].float().numpy()
        hs = [h[0, :T].float().numpy() for h in out.hidden_states]
        worst_h = max(rel(hs[i], exp["hidden_states"][i]) for i in range(len(hs)))
        steps = lg[T - 1:T + 15]
        worst_step = max(rel(steps[i], exp["greedy_logits"][i]) for i in range(16))
        flips = int((steps.argmax(-1) != exp["greedy_ids"]).sum())
        msg = ""
        if "pixel_values" in exp:
            pv = torch.tensor(exp["pixel_values"]).to(torch.bfloat16)
            with torch.no_grad():
                vo = m.model.vision_tower(pixel_values=pv).last_hidden_state
                feats = m.model.multi_modal_projector(vo).float().numpy()
            msg = f", vision {rel(vo.float().numpy(), exp['vision_last_hidden']):.1e}, features {rel(feats, exp['image_features']):.1e}"
        print(f"{case}: bf16 prefill logits {rel(lg[:T], exp['logits']):.1e}, hidden {worst_h:.1e}, "
              f"steps {worst_step:.1e}, flips {flips}/16{msg}")

        m32, _ = load(case, torch.float32)
        for mod in m32.modules():
            if type(mod).__name__ == "Linear":
                mod.register_forward_pre_hook(
                    lambda mod, args: tuple(a.to(torch.bfloat16).float() if torch.is_tensor(a) else a for a in args))
        with torch.no_grad():
            lg32 = m32(**inputs(exp, exp["greedy_ids"][:0], torch.float32)).logits[0].numpy()
        print(f"{case}: gemm-in bf16 prefill logits {rel(lg32, exp['logits']):.1e}")


if __name__ == "__main__":
    main()
