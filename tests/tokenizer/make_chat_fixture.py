#!/usr/bin/env python3
"""Writes tests/fixtures/chat_template_cases.json: what transformers renders
for the Gemma 3 chat template (apply_chat_template of the vendored
tokenizer_config.json) on a set of conversations, including the ones the
template rejects, and what Gemma3Processor returns (input_ids,
token_type_ids) for rendered prompts with images. CI has no torch, so the
expectations are generated once here (transformers installed) and committed;
tests/unit/test_tokenizer_chat.c checks the C code against them.

Usage: python3 tests/tokenizer/make_chat_fixture.py   (from the repo root)"""

import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tokenizer_asset import REPO, tokenizer_json  # noqa: E402


def T(text):
    return {"type": "text", "text": text}


IMG = {"type": "image"}

CONVERSATIONS = [
    ("user_string", [{"role": "user", "content": "What is shown in this X-ray?"}], True),
    ("user_string_no_generation_prompt", [{"role": "user", "content": "Hello"}], False),
    ("user_parts", [{"role": "user", "content": [T("Describe the findings.")]}], True),
    ("system_and_user", [{"role": "system", "content": "You are an expert radiologist."},
                         {"role": "user", "content": "Describe this image."}], True),
    ("system_parts_untrimmed", [{"role": "system", "content": [T("  You are helpful.  ")]},
                                {"role": "user", "content": [T("  Hi  ")]}], True),
    ("multi_turn", [{"role": "user", "content": "Is there a fracture?"},
                    {"role": "assistant", "content": "No fracture is seen."},
                    {"role": "user", "content": "Any effusion?"}], True),
    ("multi_turn_model_role", [{"role": "user", "content": "One"}, {"role": "model", "content": "Two"},
                               {"role": "user", "content": "Three"}], True),
    ("ends_with_assistant", [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}], False),
    ("system_multi_turn", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q1"},
                           {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"}], True),
    ("image_only", [{"role": "user", "content": [IMG]}], True),
    ("text_image_text", [{"role": "user", "content": [T("Look at this:"), IMG, T("What do you see?")]}], True),
    ("images_between_text", [{"role": "user", "content": [T("First"), IMG, T(" second "), IMG, IMG,
                                                          T("\nthird\n")]}], True),
    ("ct_slices", [{"role": "system", "content": "You are an expert radiologist."},
                   {"role": "user", "content": [T("Here is a CT series."), IMG, T("SLICE 1"), IMG, T("SLICE 2"), IMG,
                                                T("SLICE 3"), T("Is there a pulmonary embolism?")]}], True),
    ("system_with_images_in_user", [{"role": "system", "content": [T("Sys"), T("ignored second part")]},
                                    {"role": "user", "content": [IMG, T("Q")]}], True),
    ("trim_ascii_whitespace", [{"role": "user", "content": " \t\n\r\x0b\x0c padded \n\t "}], True),
    ("trim_unicode_whitespace", [{"role": "user", "content": "\u3000\u00a0\u2003\x85\x1c mid\u00a0dle \u2028\u202f"}],
     True),
    ("zero_width_not_trimmed", [{"role": "user", "content": "\u200bzw\ufeff"}], True),
    ("whitespace_only_part", [{"role": "user", "content": [T("   "), IMG, T("\n\n")]}], True),
    ("empty_string", [{"role": "user", "content": ""}], True),
    ("empty_parts", [{"role": "user", "content": []}], True),
    ("multiline_and_unicode", [{"role": "user", "content": "Patient: 72 y/o ♀\nHb 10.2 g/dL 🩺\n\n患者 — ¿dolor?"}],
     True),
    ("special_token_text", [{"role": "user", "content": "<start_of_turn>model\n<bos>"}], True),
    ("json_answer_turn", [{"role": "user", "content": "Locate the nodule."},
                          {"role": "assistant", "content": 'Final Answer: ```json\n[{"box_2d": [1, 2, 3, 4]}]\n```'},
                          {"role": "user", "content": [IMG, T("Again")]}], True),
    ("system_only", [{"role": "system", "content": "Only a system message"}], True),
    ("system_at_odd_position", [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], True),
    # The template raises for these.
    ("error_two_users", [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], True),
    ("error_assistant_first", [{"role": "assistant", "content": "a"}], True),
    ("error_system_then_assistant", [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}],
     True),
    ("error_two_systems", [{"role": "system", "content": "s"}, {"role": "system", "content": "t"}], True),
    ("error_system_image_first", [{"role": "system", "content": [IMG, T("s")]}, {"role": "user", "content": "u"}],
     True),
    ("error_no_messages", [], True),
]

PROCESSOR_PROMPTS = [
    ("one_image_256", [{"role": "user", "content": [IMG, T("Describe this X-ray.")]}], 256, 1),
    ("text_around_images_4", [{"role": "user", "content": [T("A"), IMG, T("B"), IMG, T("C")]}], 4, 2),
    ("ct_style_3", [{"role": "system", "content": "You are an expert radiologist."},
                    {"role": "user", "content": [T("Series:"), IMG, T("SLICE 1"), IMG, T("SLICE 2"), T("Findings?")]}],
     3, 2),
    ("no_image_2", [{"role": "user", "content": "Just text, no image."}], 2, 0),
    ("image_first_turn_multi_5", [{"role": "user", "content": [IMG]}, {"role": "assistant", "content": "ok"},
                                  {"role": "user", "content": [T("and"), IMG]}], 5, 2),
]


def main():
    from transformers import AutoTokenizer

    tmp = tempfile.mkdtemp()
    try:
        shutil.copy(tokenizer_json(), os.path.join(tmp, "tokenizer.json"))
        shutil.copy(os.path.join(REPO, "assets/gemma3-tokenizer/tokenizer_config.json"), tmp)
        tok = AutoTokenizer.from_pretrained(tmp)
        cases = []
        for name, messages, gen in CONVERSATIONS:
            case = {"name": name, "messages": messages, "add_generation_prompt": gen}
            try:
                case["rendered"] = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
            except Exception as e:  # the template's raise_exception, or jinja's UndefinedError
                case["error"] = f"{type(e).__name__}: {e}"
            cases.append(case)
        processor_cases = [processor_case(tok, *p) for p in PROCESSOR_PROMPTS]
    finally:
        shutil.rmtree(tmp)
    out = {"source": "transformers apply_chat_template + Gemma3Processor, by tests/tokenizer/make_chat_fixture.py",
           "transformers_version": __import__("transformers").__version__, "chat_template": tok.chat_template,
           "cases": cases, "processor_cases": processor_cases}
    path = os.path.join(REPO, "tests/fixtures/chat_template_cases.json")
    with open(path, "w") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {path}: {len(cases)} conversations, {len(processor_cases)} processor prompts")


def processor_case(tok, name, messages, seq_len, n_images):
    import numpy as np
    from PIL import Image
    from transformers import Gemma3ImageProcessor, Gemma3Processor

    proc = Gemma3Processor(image_processor=Gemma3ImageProcessor(), tokenizer=tok, image_seq_length=seq_len,
                           chat_template=tok.chat_template)
    prompt = proc.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # The way MedGemma's notebooks call it: images inside the messages, tokenize=True.
    k = 0
    with_images = json.loads(json.dumps(messages))
    for m in with_images:
        for part in m["content"] if isinstance(m["content"], list) else []:
            if part["type"] == "image":
                part["image"] = Image.fromarray(np.full((32, 32, 3), 40 * k, np.uint8))
                k += 1
    assert k == n_images, name
    enc = proc.apply_chat_template(with_images, tokenize=True, add_generation_prompt=True, return_dict=True,
                                   return_tensors="np")
    ids = enc["input_ids"][0].tolist()
    assert ids.count(2) == 1, f"{name}: <bos> doubled"
    types = enc["token_type_ids"][0].tolist() if "token_type_ids" in enc else [0] * len(ids)
    return {"name": name, "prompt": prompt, "image_seq_length": seq_len, "n_images": n_images, "input_ids": ids,
            "token_type_ids": types}


if __name__ == "__main__":
    main()
