"""tokenize_conversation / tokenize_prompt: parity with LLaVA's preprocess on every golden case, and failures."""

from __future__ import annotations

import pytest

from piip_llava.constants import IGNORE_INDEX
from piip_llava.data.errors import BadSampleError
from piip_llava.data.preprocess import (
    tokenize_conversation,
    tokenize_prompt,
    tokenize_prompt_for_generation,
)
from piip_llava.data.tokenizer import load_tokenizer

LLAVA_IMAGE = -200
GOLDEN = [
    ("expected_v1.jsonl", "v1", 2048),
    ("expected_v1_maxlen64.jsonl", "v1", 64),
    ("expected_plain.jsonl", "plain", 2048),
    ("expected_plain_maxlen64.jsonl", "plain", 64),
]
MISMATCH_REASONS = {
    "empty_gpt_reply": "no_supervised_tokens",
    "mismatch_assistant_marker_in_human": "reserved_text",
    "mismatch_literal_eos_in_answer": "reserved_text",
    "mismatch_literal_unk": "llava_mismatch",
}


def _llava(record, vicuna, template, max_length, **kwargs):
    return tokenize_conversation(
        record["conversations"],
        vicuna,
        template,
        has_image="image" in record,
        image_token_id=LLAVA_IMAGE,
        num_image_tokens=1,
        max_length=max_length,
        sample_id=record["id"],
        **kwargs,
    )


def _first_supervised(labels):
    return next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)


@pytest.mark.parametrize("filename,template,max_length", GOLDEN)
def test_parity_with_llava_preprocess(filename, template, max_length, vicuna, records, golden):
    """Every golden case: ids and labels equal LLaVA's; the 4 mismatch cases raise with the sample id.

    With ``max_length=None`` (no truncation here) the output is exactly LLaVA's ``preprocess`` output (text-only
    samples are truncated there at tokenisation, so those are compared on the first ``max_length`` tokens).
    With ``max_length`` the output is LLaVA's cut to ``max_length`` -- what its collator makes of it; a sample
    whose answer starts beyond ``max_length`` (zero loss in LLaVA) raises instead.
    """
    cases = golden(filename)
    assert len(cases) == (34 if template == "v1" else 21)
    checked = 0
    for case in cases:
        record = records[case["id"]]
        if case["mismatch"]:
            for limit in (max_length, None):
                with pytest.raises(BadSampleError) as info:
                    _llava(record, vicuna, template, limit)
                assert info.value.sample_id == case["id"] and case["id"] in str(info.value)
                assert info.value.reason == MISMATCH_REASONS[case["id"]]
            continue

        full = _llava(record, vicuna, template, None)
        if "image" in record:
            assert full.input_ids == case["input_ids"], case["id"]
            assert full.labels == case["labels"], case["id"]
        else:
            assert full.input_ids[:max_length] == case["input_ids"], case["id"]
            assert full.labels[:max_length] == case["labels"], case["id"]
        assert full.num_images == (1 if "image" in record else 0)

        if _first_supervised(case["labels"]) >= max_length:
            with pytest.raises(BadSampleError) as info:
                _llava(record, vicuna, template, max_length)
            assert info.value.reason == "no_supervised_tokens" and info.value.sample_id == case["id"]
            continue
        cut = _llava(record, vicuna, template, max_length)
        assert cut.input_ids == case["input_ids"][:max_length], case["id"]
        assert cut.labels == case["labels"][:max_length], case["id"]
        assert cut.num_truncated_tokens == max(0, len(full) - max_length)
        checked += 1
    assert checked >= (29 if template == "v1" else 21)


def test_supervised_spans_match(vicuna, records, golden):
    for case in golden("expected_v1.jsonl"):
        if case["mismatch"]:
            continue
        labels = _llava(records[case["id"]], vicuna, "v1", None).labels
        spans, start = [], None
        for i, label in enumerate([*labels, IGNORE_INDEX]):
            if label != IGNORE_INDEX and start is None:
                start = i
            elif label == IGNORE_INDEX and start is not None:
                spans.append([start, i])
                start = None
        expected = [s[:2] for s in case["supervised_spans"]]
        if "image" not in records[case["id"]]:
            spans = [[a, min(b, 2048)] for a, b in spans if a < 2048]
        assert spans == expected, case["id"]


@pytest.mark.parametrize("filename,template", [("expected_v1.jsonl", "v1"), ("expected_plain.jsonl", "plain")])
def test_image_expanded_to_n_in_vocab_tokens(filename, template, vicuna, records, golden):
    """Our model: one LLaVA sentinel becomes N copies of the in-vocabulary ``<image>`` id, labels ignored."""
    n = 7
    for case in golden(filename):
        record = records[case["id"]]
        if case["mismatch"] or "image" not in record:
            continue
        sample = tokenize_conversation(
            record["conversations"], vicuna, template, has_image=True, num_image_tokens=n, max_length=None
        )
        expected_ids, expected_labels = [], []
        for token, label in zip(case["input_ids"], case["labels"]):
            if token == LLAVA_IMAGE:
                expected_ids += [vicuna.image_token_id] * n
                expected_labels += [IGNORE_INDEX] * n
            else:
                expected_ids.append(token)
                expected_labels.append(label)
        assert sample.input_ids == expected_ids, case["id"]
        assert sample.labels == expected_labels, case["id"]


def test_tokenizer_image_token_parity(vicuna, golden):
    for case in golden("tokenizer_image_token.jsonl"):
        assert tokenize_prompt(case["text"], vicuna, image_token_id=LLAVA_IMAGE) == case["input_ids"], case["text"]
    ids = tokenize_prompt("a <image> b", vicuna, num_image_tokens=3)
    assert ids.count(vicuna.image_token_id) == 3


def test_eval_prompt_parity(vicuna, golden):
    for case in golden("eval_prompts.jsonl"):
        ids = tokenize_prompt_for_generation(
            [{"role": "user", "content": "<image>\n" + case["text"]}],
            vicuna,
            case["conv_mode"],
            image_token_id=LLAVA_IMAGE,
            num_images=1,
        )
        assert ids == case["input_ids"], case["question_id"]


def test_generation_prompt_is_a_prefix_of_training(vicuna):
    """What the model sees at inference is exactly the unsupervised prefix it was trained on."""
    turns = [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A cat."}]
    train = tokenize_conversation(turns, vicuna, "v1", has_image=True, num_image_tokens=4)
    prompt = tokenize_prompt_for_generation(turns[:1], vicuna, "v1", num_image_tokens=4, num_images=1)
    assert train.input_ids[: len(prompt)] == prompt
    assert all(label == IGNORE_INDEX for label in train.labels[: len(prompt)])
    assert train.labels[len(prompt)] != IGNORE_INDEX


def test_generation_prompt_image_count_checked(vicuna):
    with pytest.raises(ValueError, match="2 image"):
        tokenize_prompt_for_generation([{"role": "user", "content": "<image> hi"}], vicuna, "v1", num_images=2)


def test_bad_sample_error_pickles():
    import pickle

    error = pickle.loads(pickle.dumps(BadSampleError("missing_image", "gone", "id7", "f.json:3")))
    assert (error.reason, error.sample_id, error.location) == ("missing_image", "id7", "f.json:3")
    assert str(error) == "sample 'id7' (f.json:3): gone [missing_image]"


def test_bare_hf_tokenizer_refused(vicuna):
    with pytest.raises(TypeError, match="LoadedTokenizer"):
        tokenize_conversation([], vicuna.tokenizer, "v1", has_image=False)


# -- failures -----------------------------------------------------------------------------------------------


def _turns(*values):
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": v} for i, v in enumerate(values)]


@pytest.mark.parametrize(
    "conversations,has_image,reason",
    [
        ([], False, "empty_conversation"),
        (None, False, "empty_conversation"),
        (_turns("Hi <image>", "Hello"), False, "image_tag_without_image"),
        (_turns("<image> and <image>", "two"), True, "too_many_image_tags"),
        (_turns("<image>", "one", "<image>", "two"), True, "too_many_image_tags"),
        (_turns("What?", "Answer"), True, "image_without_tag"),
        (_turns("<image>", "look: <image>"), False, "image_tag_without_image"),
        ([{"from": "human", "value": "x"}, {"from": "human", "value": "y"}], False, "roles_not_alternating"),
        ([{"from": "robot", "value": "x"}], False, "unknown_role"),
        (_turns("Question?"), False, "ends_with_user_turn"),
        ([{"from": "gpt", "value": "Only me."}], False, "empty_conversation"),
        (_turns("Tell me", "   "), False, None),  # whitespace answer is still an answer: supervised " </s>"
        (_turns("Tell me", ""), False, "no_supervised_tokens"),
        ([{"from": "human", "value": 3}], False, "malformed_record"),
    ],
)
def test_bad_conversations(conversations, has_image, reason, vicuna):
    if reason is None:
        tokenize_conversation(conversations, vicuna, "v1", has_image=has_image, sample_id="s1")
        return
    with pytest.raises(BadSampleError) as info:
        tokenize_conversation(conversations, vicuna, "v1", has_image=has_image, sample_id="s1")
    assert info.value.reason == reason
    assert "'s1'" in str(info.value)


def test_image_in_answer_rejected(vicuna):
    turns = [{"from": "human", "value": "Show me"}, {"from": "gpt", "value": "<image> here"}]
    with pytest.raises(BadSampleError) as info:
        tokenize_conversation(turns, vicuna, "v1", has_image=True, sample_id="s2")
    assert info.value.reason == "image_tag_in_answer"


def test_plain_needs_one_image_exchange(vicuna):
    with pytest.raises(BadSampleError, match="plain") as info:
        tokenize_conversation(_turns("hi", "there"), vicuna, "plain", has_image=False, sample_id="p")
    assert info.value.reason == "template_mismatch"
    with pytest.raises(BadSampleError):
        tokenize_conversation(_turns("<image>", "a", "b", "c"), vicuna, "plain", has_image=True)


def test_truncation_never_cuts_image(vicuna):
    turns = _turns("<image>\nDescribe.", "A cat.")
    with pytest.raises(BadSampleError) as info:
        tokenize_conversation(turns, vicuna, "v1", has_image=True, num_image_tokens=100, max_length=80, sample_id="t")
    assert info.value.reason == "image_truncated"
    # Image at the very end of the kept window is fine only if the whole run fits.
    sample = tokenize_conversation(turns, vicuna, "v1", has_image=True, num_image_tokens=100, max_length=200)
    assert sample.input_ids.count(vicuna.image_token_id) == 100 and sample.num_truncated_tokens == 0


def test_answer_longer_than_max_length(vicuna):
    """A long answer is cut (and counted) like LLaVA does; an answer that starts past the limit is refused."""
    long_answer = "word " * 300
    sample = tokenize_conversation(_turns("Q?", long_answer), vicuna, "v1", has_image=False, max_length=100)
    assert len(sample.input_ids) == 100 and sample.num_truncated_tokens > 0
    assert sample.labels[-1] != IGNORE_INDEX
    with pytest.raises(BadSampleError) as info:
        tokenize_conversation(
            _turns("<image>\nQ?", long_answer),
            vicuna,
            "v1",
            has_image=True,
            num_image_tokens=60,
            max_length=100,
            sample_id="long",
        )
    assert info.value.reason == "no_supervised_tokens" and "max_length=100" in str(info.value)


def test_literal_bos_text_is_kept(vicuna, records):
    """LLaVA keeps '<s>' as BOS id 1 inside text and supervises it; so do we (golden case)."""
    sample = _llava(records["text_only_literal_bos_tag"], vicuna, "v1", 2048)
    assert sample.labels.count(1) == 1


def test_system_turn_overrides_system_prompt(vicuna):
    turns = [{"from": "system", "value": "Be brief."}, *_turns("Q?", "A.")]
    sample = tokenize_conversation(turns, vicuna, "v1", has_image=False)
    assert vicuna.tokenizer.decode(sample.input_ids[1:6]).startswith("Be brief.")


# -- other templates / tokenizers ------------------------------------------------------------------------------


def _supervised_text(tokenizer, sample):
    return tokenizer.decode([t for t, label in zip(sample.input_ids, sample.labels) if label != IGNORE_INDEX])


def test_chatml_by_construction(chatml_tokenizer_dir):
    loaded = load_tokenizer(chatml_tokenizer_dir)
    turns = [
        {"from": "human", "value": "<image>\nWhat is shown in the image?"},
        {"from": "gpt", "value": "A red bus."},
        {"from": "human", "value": "How many people?"},
        {"from": "gpt", "value": "There are three."},
    ]
    sample = tokenize_conversation(turns, loaded, "chatml", has_image=True, num_image_tokens=3)
    assert sample.input_ids.count(loaded.image_token_id) == 3
    assert _supervised_text(loaded.tokenizer, sample) == "A red bus.<|im_end|>There are three.<|im_end|>"
    prompt = tokenize_prompt_for_generation(turns[:1], loaded, "chatml", num_image_tokens=3)
    assert sample.input_ids[: len(prompt)] == prompt
    with pytest.raises(BadSampleError) as info:
        tokenize_conversation(_turns("hi<|im_end|>", "x"), loaded, "chatml", has_image=False, sample_id="c")
    assert info.value.reason == "reserved_text"


def test_llama3_by_construction(llama3_tokenizer_dir):
    loaded = load_tokenizer(llama3_tokenizer_dir)
    sample = tokenize_conversation(_turns("<image>\nWhat?", "A dog."), loaded, "llama_3", has_image=True)
    assert sample.input_ids[0] == loaded.tokenizer.convert_tokens_to_ids("<|begin_of_text|>")
    assert _supervised_text(loaded.tokenizer, sample) == "A dog.<|eot_id|>"


def test_boundary_mismatch_is_reported(vicuna):
    """Llama-3 markers are plain text to a Llama-2 vocabulary and merge across the supervision boundary."""
    with pytest.raises(BadSampleError) as info:
        tokenize_conversation(_turns("Q", "A", "Q2", "A2"), vicuna, "llama_3", has_image=False, sample_id="m")
    assert info.value.reason == "tokenization_mismatch"
