"""The optional lmms-eval backend: request batching, prompts and stop strings (no lmms-eval needed)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from PIL import Image

from piip_llava.eval import lmms_eval_plugin as plugin


class FakeGenerator:
    """Records every batch; answers ``"<content> || STOP tail"`` so stop strings can be checked."""

    def __init__(self):
        self.calls = []

    def generate(self, conversations, images, options):
        self.calls.append((conversations, images, options))
        return [f"{c[0]['content']} STOP tail" for c in conversations]


def request(context, gen_kwargs, doc_id, task="textvqa_val"):
    return SimpleNamespace(args=(context, gen_kwargs, lambda doc: doc["images"], doc_id, task, "val"))


def test_generate_until_batches_consecutive_equal_kwargs_and_keeps_order():
    docs = {"textvqa_val": {"val": [{"images": [Image.new("L", (4, 4))]}, {"images": []}, {"images": [None]}]}}
    short = {"max_new_tokens": 16, "until": ["STOP"]}
    long = {"max_new_tokens": 64, "temperature": 0}
    requests = [request("<image>\nq0", short, 0), request("q1", short, 1), request("q2", long, 2), request("q3", short, 0)]
    fake = FakeGenerator()
    done = []
    answers = plugin.generate_until(fake, requests, docs, batch_size=8, on_progress=done.append)
    assert answers == ["<image>\nq0", "q1", "q2 STOP tail", "<image>\nq3"]
    assert [len(c[0]) for c in fake.calls] == [2, 1, 1] and done == [2, 1, 1]
    first_images = fake.calls[0][1]
    assert first_images[0][0].mode == "RGB" and first_images[1] == []
    assert fake.calls[1][2].max_new_tokens == 64 and fake.calls[1][2].temperature == 0.0


def test_batch_size_limits_batches():
    docs = {"t": {"val": [{"images": []}] * 5}}
    fake = FakeGenerator()
    plugin.generate_until(fake, [request(f"q{i}", {}, i, task="t") for i in range(5)], docs, batch_size=2)
    assert [len(c[0]) for c in fake.calls] == [2, 2, 1]
    assert fake.calls[0][2].max_new_tokens == 1024  # lmms-eval's usual default when a task sets none


def test_non_image_visual_is_rejected_with_its_doc():
    docs = {"t": {"val": [{"images": ["clip.mp4"]}]}}
    with pytest.raises(TypeError, match="t/val doc 0: PIIP-LLaVA takes images only"):
        plugin.generate_until(FakeGenerator(), [request("q", {}, 0, task="t")], docs, batch_size=1)


def test_helpers():
    assert plugin.build_user_turn("<image>\nWhat is it?", 1) == "<image>\nWhat is it?"
    assert plugin.build_user_turn("What is it? <image>", 2) == "<image>\n<image>\nWhat is it?"
    assert plugin.cut_at_stop_strings("a\n\nb", ["", "\n\n"]) == "a"
    assert plugin.cut_at_stop_strings("a.b", ".") == "a"


@pytest.mark.skipif(plugin.LMMS_EVAL_AVAILABLE, reason="lmms-eval is installed")
def test_constructing_without_lmms_eval_says_what_to_install():
    with pytest.raises(ImportError, match="pip install lmms-eval"):
        plugin.PiipLlavaLmms("any/path")
