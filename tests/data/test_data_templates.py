"""Conversation templates: selection by name, rendering, stop strings."""

from __future__ import annotations

import dataclasses

import pytest

from piip_llava.data.templates import (
    VICUNA_SYSTEM,
    ConversationTemplate,
    get_template,
    template_names,
    to_messages,
)


def test_names_and_alias():
    assert {"plain", "vicuna_v1", "v1", "llava_v1", "chatml", "llama_3"} <= set(template_names())
    assert get_template("v1") is get_template("vicuna_v1")
    template = get_template("chatml")
    assert get_template(template) is template


def test_unknown_name_lists_valid_names():
    with pytest.raises(KeyError) as info:
        get_template("vicuna")
    message = str(info.value)
    for name in ("plain", "vicuna_v1", "llava_v1", "chatml", "llama_3"):
        assert name in message


def test_templates_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_template("v1").system = "x"  # type: ignore[misc]
    custom = dataclasses.replace(get_template("v1"), system="Be brief.")
    assert isinstance(custom, ConversationTemplate) and custom.system == "Be brief."
    assert get_template("v1").system == VICUNA_SYSTEM


def test_vicuna_eval_prompts_match_llava(golden):
    for case in golden("eval_prompts.jsonl"):
        prompt = get_template(case["conv_mode"]).render_prompt(
            [{"role": "user", "content": "<image>\n" + case["text"]}]
        )
        assert prompt == case["prompt"]
        assert prompt.endswith(" ASSISTANT:")


def test_vicuna_multi_turn_and_llava_turn_format():
    template = get_template("vicuna_v1")
    turns = [
        {"from": "human", "value": "Hi"},
        {"from": "gpt", "value": "Hello."},
        {"from": "human", "value": "Bye"},
    ]
    assert template.render_prompt(turns) == f"{VICUNA_SYSTEM} USER: Hi ASSISTANT: Hello.</s>USER: Bye ASSISTANT:"
    assert template.render_prompt(turns, add_generation_prompt=False).endswith("USER: Bye ")
    assert template.stop_strings == ("</s>",)


def test_llava_v1_system_prompt_differs():
    assert "curious human" in get_template("llava_v1").render_prompt([{"role": "user", "content": "x"}])


def test_system_message_overrides_default():
    prompt = get_template("chatml").render_prompt(
        [{"role": "system", "content": "Sys."}, {"role": "user", "content": "Q?"}]
    )
    assert prompt == "<|im_start|>system\nSys.<|im_end|>\n<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n"
    assert get_template("chatml").stop_strings == ("<|im_end|>",)


def test_llama3_render():
    template = get_template("llama_3")
    prompt = template.render_prompt(
        [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}], system="S"
    )
    assert prompt == (
        "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nQ?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nA.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert template.stop_strings == ("<|eot_id|>",)


def test_plain_keeps_only_image_placeholders():
    template = get_template("plain")
    assert template.render_prompt([{"role": "user", "content": "<image>\nDescribe it."}]) == "<image>"
    spans = template.spans(
        to_messages([{"from": "human", "value": "<image>\nDescribe."}, {"from": "gpt", "value": "A cat."}])
    )
    assert [(s.text, s.supervised) for s in spans] == [("<image>", False), ("A cat.\n", True)]
    assert template.stop_strings == ("\n",)


def test_unknown_role_rejected():
    with pytest.raises(ValueError, match="unknown role"):
        get_template("v1").render_prompt([{"from": "robot", "value": "x"}])
