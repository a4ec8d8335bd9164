#!/usr/bin/env python3
"""HF transformers baseline for bench/gpu (issue 7): the same shapes as gpu_bench.

Builds Gemma3ForConditionalGeneration with MedGemma 1.5 4B's configuration and
random bf16 weights directly on the GPU (no download; values do not matter for
speed), then measures with eager-mode generate():
  hf_ttft_ms_1img  one 896x896 image + 100 text tokens -> first token
  hf_decode_tok_s  greedy decode rate after a 128-token prompt
Writes {"hf_decode_tok_s": ..., "hf_ttft_ms_1img": ..., "hf_versions": ...} to --out.
--tiny runs a small config on the CPU (a check of this script where no GPU exists).
Needs torch and transformers (the lent GPU machine has them; CI does not run this).
"""
import argparse
import json
import sys
import time


def build_config(tiny):
    from transformers import Gemma3Config, Gemma3TextConfig, SiglipVisionConfig

    if tiny:
        text = dict(vocab_size=512, hidden_size=64, intermediate_size=64, num_hidden_layers=7,
                    num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=16,
                    query_pre_attn_scalar=16)
        vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      image_size=64, patch_size=8)
        mm_tokens, image_token, boi, eoi = 16, 502, 500, 501
    else:
        text = dict(vocab_size=262208, hidden_size=2560, intermediate_size=10240, num_hidden_layers=34,
                    num_attention_heads=8, num_key_value_heads=4, head_dim=256, sliding_window=1024,
                    query_pre_attn_scalar=256)
        vision = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                      image_size=896, patch_size=14)
        mm_tokens, image_token, boi, eoi = 256, 262144, 255999, 256000
    n_layers = text["num_hidden_layers"]
    text_config = Gemma3TextConfig(
        **text, rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh", max_position_embeddings=131072,
        layer_types=["full_attention" if i % 6 == 5 else "sliding_attention" for i in range(n_layers)],
        rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}})
    vision_config = SiglipVisionConfig(**vision, num_channels=3, layer_norm_eps=1e-6,
                                       vision_use_head=False)
    config = Gemma3Config(text_config=text_config.to_dict(), vision_config=vision_config.to_dict(),
                          mm_tokens_per_image=mm_tokens, image_token_index=image_token, boi_token_index=boi,
                          eoi_token_index=eoi)
    return config, dict(image_token=image_token, boi=boi, eoi=eoi, mm_tokens=mm_tokens,
                        image_size=vision["image_size"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--decode-steps", type=int, default=64)
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import Gemma3ForConditionalGeneration

    device = "cpu" if args.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("hf_baseline: no CUDA device for torch")
    config, ids = build_config(args.tiny)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        model = Gemma3ForConditionalGeneration(config)
    torch.set_default_dtype(torch.float32)
    model = model.to(device=device, dtype=torch.bfloat16).eval()

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    gen = dict(do_sample=False, eos_token_id=None, pad_token_id=0)
    # TTFT: BOS, 50 text tokens, one image block, 50 text tokens; pixels -> first token.
    vocab = config.text_config.vocab_size
    text = [10 + (1000 + (i * 37) % 5000) % (vocab // 2) for i in range(100)]
    image_block = [108, ids["boi"]] + [ids["image_token"]] * ids["mm_tokens"] + [ids["eoi"], 108]
    prompt = torch.tensor([[2] + text[:50] + image_block + text[50:]], device=device)
    token_type = (prompt == ids["image_token"]).long()
    pixels = torch.rand(1, 3, ids["image_size"], ids["image_size"], device=device, dtype=torch.bfloat16) * 2 - 1
    times = []
    with torch.inference_mode():
        for _ in range(3):
            sync()
            t0 = time.perf_counter()
            model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), pixel_values=pixels,
                           token_type_ids=token_type, max_new_tokens=1, **gen)
            sync()
            times.append(time.perf_counter() - t0)
        ttft_ms = sorted(times)[1] * 1e3

        # Decode: a 128-token text prompt; rate = extra tokens / extra time over a 1-token generate.
        p2 = torch.tensor([[2] + [10 + (1000 + (i * 97) % 50000) % (vocab // 2) for i in range(127)]], device=device)
        n = args.decode_steps

        def timed(new_tokens):
            sync()
            t0 = time.perf_counter()
            model.generate(input_ids=p2, attention_mask=torch.ones_like(p2), max_new_tokens=new_tokens,
                           min_new_tokens=new_tokens, **gen)
            sync()
            return time.perf_counter() - t0

        timed(4)  # warm-up
        t1 = min(timed(1) for _ in range(2))
        tn = timed(n + 1)
        decode_tok_s = n / max(tn - t1, 1e-9)

    result = {"hf_decode_tok_s": round(decode_tok_s, 2), "hf_ttft_ms_1img": round(ttft_ms, 2),
              "hf_versions": f"torch {torch.__version__}, transformers {transformers.__version__}, eager"}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
