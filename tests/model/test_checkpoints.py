"""Official PIIP-LLaVA and LLaVA-1.5 release directories load offline and reproduce their model."""

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig

from conftest import FIXTURES
from piip_llava.model import PiipLlavaConfig, PiipLlavaForConditionalGeneration
from piip_llava.model.checkpoints import CheckpointError, load_official, ours_to_official

TOKENIZER = FIXTURES / "tokenization" / "tokenizer"
LLAMA = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
             vocab_size=32000, rms_norm_eps=1e-5, max_position_embeddings=256, pad_token_id=0, bos_token_id=1, eos_token_id=2)


def reference_model(arch):
    torch.manual_seed(0)
    config = PiipLlavaConfig.from_architecture(arch, LlamaConfig(**LLAMA), image_token_id=32000)
    model = PiipLlavaForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, p in model.vision_tower.named_parameters():
            if name.endswith(("ca_weight", "cffn_weight")):
                p.normal_(std=0.3)
    return model


def write_release(model, directory, config_extra, model_type="llava_llama", skip_vision=False, shards=2):
    """A release directory exactly as published: LLaVA key names, sharded safetensors + index, tokenizer."""
    directory.mkdir(parents=True)
    state = {ours_to_official(k, model_type): v.contiguous() for k, v in model.state_dict().items()
             if not (skip_vision and k.startswith("vision_tower."))}
    keys = sorted(state)
    weight_map = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k] for k in keys[i::shards]}
        save_file(part, directory / name, metadata={"format": "pt"})
        weight_map.update({k: name for k in part})
    (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    config = {"model_type": model_type, "architectures": ["LlavaLlamaForCausalLM"], "image_aspect_ratio": "pad",
              "tokenizer_model_max_length": 2048, **LLAMA, **config_extra}
    (directory / "config.json").write_text(json.dumps(config))
    for file in TOKENIZER.iterdir():
        shutil.copy(file, directory / file.name)
    return directory


def compare(reference, loaded, pixels):
    """Same visual tokens, and the same logits on a multimodal prompt (over the original vocabulary)."""
    with torch.no_grad():
        features = reference.get_image_features(pixels)
        torch.testing.assert_close(loaded.get_image_features(pixels), features, atol=0, rtol=0)
        n = loaded.num_image_tokens
        ids = torch.tensor([[1, 319, 29871] + [loaded.config.image_token_id] * n + [1724, 338]])
        text = torch.tensor([[1, 319, 29871] + [0] * n + [1724, 338]])
        embeds = reference.get_input_embeddings()(text)
        embeds[0, 3 : 3 + n] = features[0]
        expected = reference.language_model(inputs_embeds=embeds).logits
        actual = loaded(input_ids=ids, pixel_values=pixels).logits[..., :32000]
        torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch,size", [("tiny-piip-vit", 128), ("tiny-piip-convnext", 160)])
def test_official_piip_release_loads_offline(tmp_path, arch, size):
    reference = reference_model(arch)
    release = write_release(reference, tmp_path / "release", {"mm_vision_tower": f"configs/{arch}.py", "mm_projector_type": "mlp2x_gelu"})
    if arch == "tiny-piip-convnext":  # the layer scale is stored as `weight`, never timm's `gamma`
        index = json.loads((release / "model.safetensors.index.json").read_text())["weight_map"]
        assert any(k.endswith("blocks.0.weight") for k in index) and not any("gamma" in k for k in index)
    model, tokenizer = load_official(release)
    assert model.config.image_token_id == 32000 and tokenizer.vocab_size == 32001
    assert model.get_input_embeddings().weight.shape[0] == 32001
    compare(reference, model, torch.randn(1, 3, size, size))


def test_convert_command_writes_our_format(tmp_path):
    from piip_llava.cli import main

    reference = reference_model("tiny-piip-vit")
    release = write_release(reference, tmp_path / "release", {"mm_vision_tower": "configs/tiny-piip-vit.py"})
    assert main(["convert", str(release), str(tmp_path / "ours")]) == 0
    converted = PiipLlavaForConditionalGeneration.from_pretrained(tmp_path / "ours").eval()
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["model_type"] == "piip_llava"
    compare(reference, converted, torch.randn(1, 3, 128, 128))


def test_llava15_release_with_separate_clip_folder(tmp_path):
    torch.manual_seed(0)
    clip = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                                            image_size=48, patch_size=16))
    clip.save_pretrained(tmp_path / "clip")
    from piip_llava.model.checkpoints import llava_tower

    config_extra = {"mm_vision_tower": "openai/clip-vit-large-patch14-336", "mm_projector_type": "mlp2x_gelu",
                    "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch", "mm_hidden_size": 32}
    spec = llava_tower({**config_extra, "hidden_size": 64}, tmp_path / "clip")
    reference = PiipLlavaForConditionalGeneration(PiipLlavaConfig.from_architecture(spec, LlamaConfig(**LLAMA), image_token_id=32000)).eval()
    state = {"branch1." + k: v for k, v in __import__("piip_llava.model.checkpoints", fromlist=["x"]).read_clip_folder(tmp_path / "clip").items()}
    reference.vision_tower.load_state_dict(state, strict=True)
    release = write_release(reference, tmp_path / "release", config_extra, model_type="llava", skip_vision=True)
    with pytest.raises(CheckpointError, match="--vision-tower"):
        load_official(release)
    model, _ = load_official(release, vision_tower_path=tmp_path / "clip")
    assert model.num_image_tokens == 9  # 48 px / 16, cls dropped
    compare(reference, model, torch.randn(1, 3, 48, 48))
    # Layer -2 of the HF CLIP itself, cls dropped, is what reaches the projector.
    pixels = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        hidden = clip(pixels, output_hidden_states=True).hidden_states[-2][:, 1:]
        ours = model.vision_tower(pixels)[0].flatten(2).transpose(1, 2)
    torch.testing.assert_close(ours, hidden, atol=1e-5, rtol=1e-5)


def test_corrupted_release_names_every_problem(tmp_path):
    reference = reference_model("tiny-piip-vit")
    release = write_release(reference, tmp_path / "release", {"mm_vision_tower": "configs/tiny-piip-vit.py"}, shards=1)
    shard = release / "model-00001-of-00001.safetensors"
    from safetensors.torch import load_file

    state = load_file(shard)
    del state["model.mm_projector.branch1.1.weight"]
    state["model.vision_tower.vision_tower.branch9.extra"] = torch.zeros(1)
    state["model.norm.weight"] = torch.zeros(7)
    save_file(state, shard)
    index = json.loads((release / "model.safetensors.index.json").read_text())
    index["weight_map"] = {k: shard.name for k in state}
    (release / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError) as error:
        load_official(release)
    message = str(error.value)
    assert "projector.branch1.1.weight" in message and "branch9.extra" in message and "norm.weight" in message
    assert "missing (1)" in message and "unexpected (1)" in message and "wrong shape (1)" in message


def test_truncated_shard_and_unknown_architecture(tmp_path):
    reference = reference_model("tiny-piip-vit")
    release = write_release(reference, tmp_path / "a", {"mm_vision_tower": "configs/tiny-piip-vit.py"})
    shard = next(release.glob("model-00001*.safetensors"))
    shard.write_bytes(shard.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cannot be read as a weight file"):
        load_official(release)
    other = write_release(reference, tmp_path / "b", {"mm_vision_tower": "configs/piip-llava_clip-bl_512-999_7B.py"})
    with pytest.raises(CheckpointError, match="names no registered architecture"):
        load_official(other)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="invalid JSON"):
        load_official(tmp_path / "c")


def test_base_weights_from_local_files(tmp_path):
    """Training from scratch: each branch's pretrained weights come from local HF CLIP / timm files."""
    import timm

    from piip_llava.model.checkpoints import load_base_weights
    from piip_llava.vision.registry import get_architecture
    from piip_llava.vision.tower import build_vision_tower

    spec = get_architecture("tiny-piip-convnext")
    b1 = spec.tower.branches[0]
    clip = CLIPVisionModel(CLIPVisionConfig(hidden_size=b1.hidden_size, intermediate_size=b1.intermediate_size,
                                            num_hidden_layers=b1.num_layers, num_attention_heads=b1.num_heads,
                                            image_size=b1.pretrained_image_size, patch_size=16))
    clip.save_pretrained(tmp_path / "clip")
    convnext = timm.create_model("convnext_base", pretrained=False, num_classes=10, dims=(8, 16, 32, 64))
    save_file({k: v.contiguous() for k, v in convnext.state_dict().items()}, tmp_path / "convnext.safetensors")
    b1.pretrained, spec.tower.branches[1].pretrained = str(tmp_path / "clip"), str(tmp_path / "convnext.safetensors")
    tower = build_vision_tower(spec.tower)
    messages = load_base_weights(tower)
    assert all("loaded" in m for m in messages)
    torch.testing.assert_close(tower.branch2.convnext_model.stem[0].weight, convnext.stem[0].weight)
    torch.testing.assert_close(tower.branch1.clip_model.embeddings.patch_embedding.weight, clip.state_dict()["embeddings.patch_embedding.weight"])
    spec.tower.branches[0].pretrained = str(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="not found"):
        load_base_weights(build_vision_tower(spec.tower))
