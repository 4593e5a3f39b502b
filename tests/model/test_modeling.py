"""The composite model: placeholders, masked_scatter, generation with left padding, save/load."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, LlamaConfig

from piip_llava.model import ImageTokenMismatchError, PiipLlavaConfig, PiipLlavaForConditionalGeneration

IMAGE = 100


def tiny(arch="tiny-piip-vit", attn="sdpa"):
    torch.manual_seed(0)
    text = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, vocab_size=101,
                       pad_token_id=0, eos_token_id=2, bos_token_id=1)
    config = PiipLlavaConfig.from_architecture(arch, text, image_token_id=IMAGE, conversation_template="vicuna_v1")
    config._attn_implementation = attn
    model = PiipLlavaForConditionalGeneration(config).eval()
    with torch.no_grad():  # open the interaction gates so every path matters
        for name, p in model.vision_tower.named_parameters():
            if name.endswith(("ca_weight", "cffn_weight")):
                p.normal_(std=0.3)
    return model


def prompt(model, prefix=(5, 6), suffix=(7, 8, 9)):
    return torch.tensor([[1, *prefix, *([IMAGE] * model.num_image_tokens), *suffix]])


@pytest.fixture(scope="module")
def model():
    return tiny()


def test_image_tokens_are_replaced_by_visual_features(model):
    ids = prompt(model)
    pixels = torch.randn(1, 3, 128, 128)
    embeds = model.embed_multimodal(ids, pixels)
    mask = ids[0] == IMAGE
    torch.testing.assert_close(embeds[0, mask], model.get_image_features(pixels)[0])
    torch.testing.assert_close(embeds[0, ~mask], model.get_input_embeddings()(ids[0, ~mask]))


@pytest.mark.parametrize(
    "ids_fn,pixels,match",
    [
        (lambda m: torch.cat([prompt(m)[:, :10], prompt(m)[:, 12:]], 1), torch.randn(1, 3, 128, 128), "holds 62"),
        (lambda m: prompt(m), None, "no pixel_values"),
        (lambda m: torch.tensor([[1, 5, 6]]), torch.randn(1, 3, 128, 128), "need 64"),
        (lambda m: prompt(m), torch.randn(2, 3, 128, 128), "2 image"),
    ],
)
def test_placeholder_count_mismatch_is_an_explicit_error(model, ids_fn, pixels, match):
    with pytest.raises(ImageTokenMismatchError, match=match):
        model(input_ids=ids_fn(model), pixel_values=pixels)


def test_blank_images_of_text_only_samples_are_ignored(model):
    image = prompt(model)
    text = torch.full_like(image, 5)
    pixels = torch.randn(2, 3, 128, 128)
    batch = model(input_ids=torch.cat([image, text]), pixel_values=pixels, image_sample_mask=torch.tensor([True, False])).logits
    alone = model(input_ids=image, pixel_values=pixels[:1]).logits
    torch.testing.assert_close(batch[:1], alone, atol=1e-5, rtol=1e-5)


def test_loss_and_gradients_reach_every_component(model):
    model.train()
    ids = prompt(model)
    labels = ids.masked_fill(ids == IMAGE, -100)
    model(input_ids=ids, pixel_values=torch.randn(1, 3, 128, 128), labels=labels).loss.backward()
    for part in (model.vision_tower.branch1, model.vision_tower.interactions, model.projector, model.language_model):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    model.zero_grad()
    model.eval()


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        model = tiny().train()
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.vision_tower.set_gradient_checkpointing(True)
        ids = prompt(model)
        torch.manual_seed(1)
        pixels = torch.randn(1, 3, 128, 128)
        model.vision_tower.interactions.eval()  # no DropPath randomness
        model(input_ids=ids, pixel_values=pixels, labels=ids.masked_fill(ids == IMAGE, -100)).loss.backward()
        grads.append(model.projector.branch1[1].weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_batched_left_padded_generation_equals_one_by_one(model):
    short, long = prompt(model, prefix=(5,)), prompt(model, prefix=(5, 6, 7, 8))
    pixels = torch.randn(2, 3, 128, 128)
    width = long.shape[1]
    ids = torch.zeros(2, width, dtype=torch.long)
    mask = torch.zeros(2, width, dtype=torch.long)
    ids[0, width - short.shape[1]:], mask[0, width - short.shape[1]:] = short[0], 1
    ids[1], mask[1] = long[0], 1
    batched = model.generate(input_ids=ids, attention_mask=mask, pixel_values=pixels, max_new_tokens=6, do_sample=False)
    for row, single in enumerate((short, long)):
        alone = model.generate(input_ids=single, pixel_values=pixels[row:row + 1], max_new_tokens=6, do_sample=False)
        assert batched[row, width:].tolist() == alone[0, single.shape[1]:].tolist()


def test_sampling_and_kv_cache(model):
    ids, pixels = prompt(model), torch.randn(1, 3, 128, 128)
    torch.manual_seed(0)
    out = model.generate(input_ids=ids, pixel_values=pixels, max_new_tokens=5, do_sample=True, temperature=0.8, top_p=0.9)
    assert out.shape[1] == ids.shape[1] + 5
    cached = model.generate(input_ids=ids, pixel_values=pixels, max_new_tokens=5, do_sample=False, use_cache=True)
    uncached = model.generate(input_ids=ids, pixel_values=pixels, max_new_tokens=5, do_sample=False, use_cache=False)
    assert cached.tolist() == uncached.tolist()


def test_eager_and_sdpa_agree():
    ids, pixels = None, torch.randn(1, 3, 128, 128)
    outs = []
    for attn in ("eager", "sdpa"):
        model = tiny(attn=attn)
        ids = prompt(model)
        with torch.no_grad():
            outs.append(model(input_ids=ids, pixel_values=pixels).logits)
    torch.testing.assert_close(outs[0], outs[1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_forward(model, dtype):
    half = tiny().to(dtype)
    with torch.no_grad():
        logits = half(input_ids=prompt(half), pixel_values=torch.randn(1, 3, 128, 128)).logits
    assert logits.dtype == dtype and torch.isfinite(logits).all()


def test_save_and_load_through_auto_classes(model, tmp_path):
    model.save_pretrained(tmp_path)
    ids, pixels = prompt(model), torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        expected = model(input_ids=ids, pixel_values=pixels).logits
        for auto in (AutoModelForCausalLM, AutoModelForImageTextToText):
            loaded = auto.from_pretrained(tmp_path).eval()
            assert isinstance(loaded, PiipLlavaForConditionalGeneration)
            torch.testing.assert_close(loaded(input_ids=ids, pixel_values=pixels).logits, expected, atol=0, rtol=0)


def test_convnext_pyramid_model_runs():
    model = tiny("tiny-piip-convnext")
    ids = prompt(model)
    assert model.num_image_tokens == 25
    with torch.no_grad():
        assert model(input_ids=ids, pixel_values=torch.randn(1, 3, 160, 160)).logits.shape[1] == ids.shape[1]


def test_llava_baseline_model_runs():
    model = tiny("tiny-llava")
    assert model.num_image_tokens == 16
    with torch.no_grad():
        model(input_ids=prompt(model), pixel_values=torch.randn(1, 3, 64, 64))
