"""GPU check: PIIP-LLaVA-7B vs LLaVA-1.5-7B, training steps of both stages and generation, on one GPU.

For each architecture (default: ``piip-llava_clip-bl_512-256_7B`` and the LLaVA-1.5 baseline
``llava-v1.5-clip-l-336``, same run, same card) a Vicuna-7B-shaped LLM (LlamaConfig 4096 hidden, 32
layers, 11008 MLP, 32 heads; random weights) is built in bf16 on the GPU with the tower and projector, and:

* stage 1: a few optimizer steps with the ``pretrain`` policy (projector only), gradient checkpointing;
* generation: time to first token (prefill, tower included) and decode tokens/s, greedy, batch 1;
* stage 2 (LoRA): ``finetune`` policy with the LLM frozen under peft LoRA adapters (the recipe's r 128 /
  alpha 256) while projector and vision tower train in full, gradient checkpointing.

Everything goes through the real code (``apply_policy``, ``parameter_groups`` with ``mm_projector_lr``,
``_peft_wrap`` of ``piip_llava.train``), with a plain AdamW loop on synthetic inputs (random images, random
token ids with the image placeholders in front, labels on the text). Reports samples/s and peak GPU memory
per phase, prints a compact table and writes JSON to ``--json`` (default ``$OUT/gpu_check.json`` when
``$OUT`` is set).

Without CUDA it prints a skip message and exits 0. ``--tiny`` swaps in the tiny towers (``tiny-piip-vit`` /
``tiny-llava``) and a 2-layer LLaMA so the whole script runs on CPU in seconds (that is how it is tested).

    bash scripts/gpu_check.sh                 # the real check (one H100/H200, sized for < 6 minutes; not yet timed)
    python benchmarks/gpu_check.py --tiny     # logic only, CPU, seconds
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_ARCHS = ("piip-llava_clip-bl_512-256_7B", "llava-v1.5-clip-l-336")
TINY_ARCHS = ("tiny-piip-vit", "tiny-llava")
VICUNA_7B = {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 32, "max_position_embeddings": 4096}
TINY_LLM = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
            "max_position_embeddings": 2048}
VOCAB, IMAGE_TOKEN_ID = 32001, 32000  # Vicuna's 32000 + <image>


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny towers + 2-layer LLaMA (tests the logic on CPU in seconds)")
    parser.add_argument("--archs", nargs="+", default=None, help=f"architectures (default {' '.join(DEFAULT_ARCHS)})")
    parser.add_argument("--device", default=None, help="cuda (default) | cpu (only with --tiny)")
    parser.add_argument("--steps", type=int, default=None, help="timed optimizer steps per stage (default 4; tiny 2)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before the timed ones")
    parser.add_argument("--batch-size", type=int, default=None, help="samples per step (default 8; tiny 2)")
    parser.add_argument("--stage1-text", type=int, default=32, help="text tokens per stage-1 sample (captions are short)")
    parser.add_argument("--stage2-text", type=int, default=256, help="text tokens per stage-2 sample (conversations)")
    parser.add_argument("--stage2-vision", choices=("recipe", "all", "interactions", "none"), default="recipe",
                        help="tower in stage 2: recipe = all for PIIP (it trains its tower), none for LLaVA-1.5 (frozen)")
    parser.add_argument("--lora-r", type=int, default=None, help="LoRA rank (default 128 as the recipe; tiny 8)")
    parser.add_argument("--lora-alpha", type=int, default=None, help="LoRA alpha (default 2 x rank)")
    parser.add_argument("--prompt-text", type=int, default=32, help="text tokens of the generation prompt (plus the image)")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens to generate (default 64; tiny 4)")
    parser.add_argument("--json", default=None, help="write results here (default $OUT/gpu_check.json if $OUT is set)")
    args = parser.parse_args(argv)
    args.archs = args.archs or list(TINY_ARCHS if args.tiny else DEFAULT_ARCHS)
    args.steps = args.steps or (2 if args.tiny else 4)
    args.batch_size = args.batch_size or (2 if args.tiny else 8)
    args.new_tokens = args.new_tokens or (4 if args.tiny else 64)
    args.lora_r = args.lora_r or (8 if args.tiny else 128)
    args.lora_alpha = args.lora_alpha or 2 * args.lora_r
    if args.json is None and os.environ.get("OUT"):
        args.json = os.path.join(os.environ["OUT"], "gpu_check.json")
    return args


# ------------------------------------------------------------------------------------------------ helpers


class Clock:
    def __init__(self, device):
        self.device = device

    def sync(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def now(self) -> float:
        self.sync()
        return time.perf_counter()


def reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def build_model(arch: str, tiny: bool, device, dtype):
    import torch
    from transformers import LlamaConfig

    from piip_llava.model import PiipLlavaConfig, PiipLlavaForConditionalGeneration

    text = LlamaConfig(vocab_size=VOCAB, bos_token_id=1, eos_token_id=2, pad_token_id=0, **(TINY_LLM if tiny else VICUNA_7B))
    config = PiipLlavaConfig.from_architecture(arch, text, image_token_id=IMAGE_TOKEN_ID, conversation_template="vicuna_v1")
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):  # initialised on the GPU (seconds), in fp32 as every init expects, then cast
        model = PiipLlavaForConditionalGeneration(config)
    model = model.to(device=device, dtype=dtype)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return model


def synthetic_batch(model, batch_size: int, text_tokens: int, device, dtype, generator):
    """BOS, the image placeholders, then random text; labels on the text only (as the collator makes them)."""
    import torch

    n_image = model.num_image_tokens
    size = model.config.tower_config.image_size
    text = torch.randint(3, IMAGE_TOKEN_ID, (batch_size, text_tokens), generator=generator)
    bos = torch.ones((batch_size, 1), dtype=torch.long)
    image = torch.full((batch_size, n_image), IMAGE_TOKEN_ID, dtype=torch.long)
    input_ids = torch.cat([bos, image, text], dim=1)
    labels = input_ids.clone()
    labels[:, : 1 + n_image] = -100
    pixel_values = torch.randn((batch_size, 3, size, size), generator=generator)
    return {"input_ids": input_ids.to(device), "labels": labels.to(device),
            "attention_mask": torch.ones_like(input_ids).to(device), "pixel_values": pixel_values.to(device=device, dtype=dtype)}


def count(module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def train_steps(model, args, text_tokens: int, lr_args, device, dtype, clock) -> dict:
    """warmup + timed AdamW steps with the trainer's parameter groups; samples/s over the timed steps."""
    import torch

    from piip_llava.train.trainer import parameter_groups

    groups = parameter_groups(model, lr_args)
    optimizer = torch.optim.AdamW(groups, lr=lr_args.learning_rate, fused=device.type == "cuda")
    generator = torch.Generator().manual_seed(1)
    batches = [synthetic_batch(model, args.batch_size, text_tokens, device, dtype, generator) for _ in range(2)]
    model.train()
    reset_peak(device)
    losses, start = [], None
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            start = clock.now()
        loss = model(**batches[step % 2]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    elapsed = clock.now() - start
    out = {
        "samples_per_s": round(args.batch_size * args.steps / elapsed, 3),
        "step_s": round(elapsed / args.steps, 3),
        "seq_len": int(batches[0]["input_ids"].shape[1]),
        "trainable_params": sum(p.numel() for g in groups for p in g["params"]),
        "peak_gib": peak_gib(device),
        "losses": [round(x, 4) for x in losses],
        "finite": all(math.isfinite(x) for x in losses),
    }
    del optimizer, groups, batches
    model.zero_grad(set_to_none=True)
    gc.collect()
    return out


def generation(model, args, device, dtype, clock) -> dict:
    """Greedy, batch 1: time to first token (prefill incl. the tower) and decode tokens/s, from one generate call
    (a stopping criterion timestamps every new token; generate synchronises there anyway)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Stamps(StoppingCriteria):
        def __init__(self):
            self.times: list[float] = []

        def __call__(self, input_ids, scores, **kwargs):
            self.times.append(clock.now())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    generator = torch.Generator().manual_seed(2)
    batch = synthetic_batch(model, 1, args.prompt_text, device, dtype, generator)
    batch.pop("labels")
    model.eval()
    common = {"do_sample": False, "pad_token_id": 0, "temperature": None, "top_p": None, "top_k": None}
    reset_peak(device)
    with torch.inference_mode():
        model.generate(**batch, max_new_tokens=2, min_new_tokens=2, **common)  # warm-up (kernels, allocator)
        stamps = Stamps()
        start = clock.now()
        output = model.generate(**batch, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                stopping_criteria=StoppingCriteriaList([stamps]), **common)
        total = clock.now() - start
    new = int(output.shape[1] - batch["input_ids"].shape[1])
    ttft = stamps.times[0] - start
    decode = stamps.times[-1] - stamps.times[0]
    return {"prompt_len": int(batch["input_ids"].shape[1]), "new_tokens": new, "ttft_ms": round(ttft * 1000, 1),
            "decode_tokens_per_s": round((len(stamps.times) - 1) / decode, 2) if decode > 0 else None,
            "e2e_tokens_per_s": round(new / total, 2), "peak_gib": peak_gib(device)}


def check_arch(arch: str, args, device, dtype) -> dict:
    from types import SimpleNamespace

    from piip_llava.train.policies import TrainablePolicy, apply_policy
    from piip_llava.train.run import _peft_wrap

    clock = Clock(device)
    start = clock.now()
    model = build_model(arch, args.tiny, device, dtype)
    result = {"arch": arch, "image_tokens": model.num_image_tokens, "image_size": model.config.tower_config.image_size,
              "params": {"vision_tower": count(model.vision_tower), "projector": count(model.projector),
                         "language_model": count(model.language_model)},
              "build_s": round(clock.now() - start, 1)}
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    # Stage 1: projector only (LLaVA-1.5: lr 1e-3).
    apply_policy(model, TrainablePolicy("pretrain"))
    lr1 = SimpleNamespace(learning_rate=1e-3, weight_decay=0.0, mm_projector_lr=None, vision_tower_lr=None)
    result["stage1"] = train_steps(model, args, args.stage1_text, lr1, device, dtype, clock)

    result["generate"] = generation(model, args, device, dtype, clock)

    # Stage 2 with LoRA: adapters on the LLM, projector (+ tower, per recipe) in full (lr 2e-4, projector 2e-5).
    vision = args.stage2_vision
    if vision == "recipe":
        vision = "none" if model.config.tower_config.kind == "single" else "all"
    result["stage2_vision"] = vision
    apply_policy(model, TrainablePolicy("finetune", vision_trainable=vision, train_llm=False))
    lora = SimpleNamespace(lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=0.05,
                           lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = _peft_wrap(model, lora)
    if device.type == "cuda":
        model.to(dtype)  # peft creates the adapters in fp32 (autocast_adapter_dtype); keep the whole step in bf16
    lr2 = SimpleNamespace(learning_rate=2e-4, weight_decay=0.0, mm_projector_lr=2e-5, vision_tower_lr=None)
    result["stage2_lora"] = train_steps(model, args, args.stage2_text, lr2, device, dtype, clock)
    result["total_s"] = round(clock.now() - start, 1)
    del model
    gc.collect()
    reset_peak(device)
    return result


def table(results: list[dict]) -> str:
    def fmt(value, spec=""):
        return "-" if value is None else format(value, spec)

    head = ("arch", "img tok", "S1 samp/s", "S1 peak GiB", "S2 tower", "S2-LoRA samp/s", "S2 peak GiB", "TTFT ms", "decode tok/s")
    rows = [head]
    for r in results:
        rows.append((r["arch"], str(r["image_tokens"]), fmt(r["stage1"]["samples_per_s"], ".2f"), fmt(r["stage1"]["peak_gib"], ".1f"),
                     r["stage2_vision"], fmt(r["stage2_lora"]["samples_per_s"], ".2f"), fmt(r["stage2_lora"]["peak_gib"], ".1f"),
                     fmt(r["generate"]["ttft_ms"], ".0f"), fmt(r["generate"]["decode_tokens_per_s"], ".1f")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    if args.device is None:
        args.device = "cpu" if args.tiny and not torch.cuda.is_available() else "cuda"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: skipped: no CUDA device visible (this check needs one H100/H200; "
              "`python benchmarks/gpu_check.py --tiny` runs its logic on CPU).")
        return 0
    if args.device == "cpu" and not args.tiny:
        print("gpu_check: the 7B check on CPU would take hours; use --tiny on CPU.", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if device.type == "cpu":
        torch.set_num_threads(1)  # tiny ops: one thread is fastest, and robust on a busy shared machine
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    env = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "dtype": str(dtype).replace("torch.", ""),
           "torch": torch.__version__, "tiny": args.tiny, "batch_size": args.batch_size, "steps": args.steps,
           "stage1_text": args.stage1_text, "stage2_text": args.stage2_text, "lora_r": args.lora_r, "new_tokens": args.new_tokens}
    print(f"gpu_check on {env['device']} ({env['dtype']}), batch {args.batch_size}, {args.steps} timed steps, archs: {', '.join(args.archs)}",
          flush=True)
    results, failures = [], {}
    for arch in args.archs:
        try:
            results.append(check_arch(arch, args, device, dtype))
            r = results[-1]
            print(f"  {arch}: done in {r['total_s']} s (build {r['build_s']} s)", flush=True)
        except torch.cuda.OutOfMemoryError as error:  # report, keep going with the next architecture
            failures[arch] = f"out of memory: {str(error).splitlines()[0]}"
            print(f"  {arch}: {failures[arch]}", flush=True)
            gc.collect()
            torch.cuda.empty_cache()
    if results:
        print(table(results))
    if len(results) == 2 and all(r["stage1"]["finite"] and r["stage2_lora"]["finite"] for r in results):
        a, b = results
        print(f"{a['arch']} vs {b['arch']}: stage-1 {a['stage1']['samples_per_s'] / b['stage1']['samples_per_s']:.2f}x, "
              f"stage-2 LoRA {a['stage2_lora']['samples_per_s'] / b['stage2_lora']['samples_per_s']:.2f}x samples/s, "
              f"TTFT {a['generate']['ttft_ms'] / max(b['generate']['ttft_ms'], 1e-9):.2f}x")
    report = {"env": env, "results": results, "failures": failures}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    bad = [r["arch"] for r in results if not (r["stage1"]["finite"] and r["stage2_lora"]["finite"])]
    if bad:
        print(f"gpu_check: non-finite losses for {', '.join(bad)}", file=sys.stderr)
    return 1 if failures or bad else 0


if __name__ == "__main__":
    sys.exit(main())
