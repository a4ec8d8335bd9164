#!/usr/bin/env python3
"""Keeps tests/fixtures/chat_template_cases.json honest: it must have been
made from the chat template vendored in assets/gemma3-tokenizer/
tokenizer_config.json, and (where transformers is installed; no torch needed)
transformers must still render every conversation exactly as recorded and
raise where it raised. The C side is checked against the same fixture by
build/unit_tests (tokenizer_chat_template_matches_transformers,
tokenizer_prompt_tokenize_matches_processor)."""

import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tokenizer_asset import REPO, tokenizer_json  # noqa: E402


def main():
    fixture = json.load(open(os.path.join(REPO, "tests/fixtures/chat_template_cases.json")))
    config = json.load(open(os.path.join(REPO, "assets/gemma3-tokenizer/tokenizer_config.json")))
    failed = 0
    if fixture.get("chat_template") == config.get("chat_template"):
        print("ok fixture_made_from_vendored_template")
    else:
        print("FAIL fixture_made_from_vendored_template: tokenizer_config.json's chat_template differs from the "
              "fixture's; rerun tests/tokenizer/make_chat_fixture.py")
        failed += 1
    n = len(fixture["cases"])
    if n < 20:
        print(f"FAIL fixture_size: {n} conversations, want >= 20")
        failed += 1
    else:
        print(f"ok fixture_size ({n} conversations, {len(fixture['processor_cases'])} processor prompts)")
    try:
        from transformers import AutoTokenizer
    except ImportError as e:
        print(f"skip transformers_renders_as_recorded: transformers is not importable ({e}); make deps installs it")
        return 1 if failed else 0
    tmp = tempfile.mkdtemp()
    try:
        shutil.copy(tokenizer_json(), os.path.join(tmp, "tokenizer.json"))
        shutil.copy(os.path.join(REPO, "assets/gemma3-tokenizer/tokenizer_config.json"), tmp)
        tok = AutoTokenizer.from_pretrained(tmp)
        problems = []
        for case in fixture["cases"]:
            try:
                got = tok.apply_chat_template(case["messages"], tokenize=False,
                                              add_generation_prompt=case["add_generation_prompt"])
                if got != case.get("rendered"):
                    problems.append(f"{case['name']}: renders {got!r}, recorded {case.get('rendered')!r}")
            except Exception as e:  # noqa: BLE001 - the template's own errors are expected for some cases
                if "error" not in case:
                    problems.append(f"{case['name']}: raised {type(e).__name__}: {e}")
        for case in fixture["processor_cases"]:
            ids = tok(case["prompt"].replace(
                "<start_of_image>",
                "\n\n<start_of_image>" + "<image_soft_token>" * case["image_seq_length"] + "<end_of_image>\n\n"),
                add_special_tokens=False)["input_ids"]
            if ids != case["input_ids"]:
                problems.append(f"{case['name']}: tokenizes differently now")
    finally:
        shutil.rmtree(tmp)
    if problems:
        print(f"FAIL transformers_renders_as_recorded: {len(problems)} differ; first: {problems[0]}")
        failed += 1
    else:
        print(f"ok transformers_renders_as_recorded (transformers {__import__('transformers').__version__}, "
              f"fixture made with {fixture.get('transformers_version')})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
