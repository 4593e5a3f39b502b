"""CPU fp32 batch-1 forward time: the PIIP tower vs the LLaVA-1.5 tower at (about) equal MACs.

Real shapes, random weights (no download): ``piip-llava_clip-bl_512-256_7B`` (CLIP-L/16 @256 + CLIP-B/16
@512, 2 interactions, ~193 GMACs) over ``llava-v1.5-clip-l-336`` (CLIP-L/14 @336, ~191 GMACs), measured
in one run, plus the share of the PIIP forward spent inside deformable attention.

    python benchmarks/vision_tower.py [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def time_forward(tower, pixel_values, repeats: int) -> list[float]:
    with torch.inference_mode():
        tower(pixel_values)  # warm-up (allocator, oneDNN primitives)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            tower(pixel_values)
            times.append(time.perf_counter() - start)
    return times


def deform_share(tower, pixel_values) -> float:
    """Fraction of one forward spent in MSDeformAttn modules (timed with forward hooks)."""
    from piip_llava.vision.deform_attn import MSDeformAttn

    spent = [0.0]
    starts: dict[int, float] = {}

    def pre(module, args):
        starts[id(module)] = time.perf_counter()

    def post(module, args, output):
        spent[0] += time.perf_counter() - starts.pop(id(module))

    handles = []
    for module in tower.modules():
        if isinstance(module, MSDeformAttn):
            handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    with torch.inference_mode():
        start = time.perf_counter()
        tower(pixel_values)
        total = time.perf_counter() - start
    for handle in handles:
        handle.remove()
    return spent[0] / total


def main() -> None:
    from piip_llava.flops import count_by_name
    from piip_llava.vision.registry import get_architecture
    from piip_llava.vision.tower import build_vision_tower

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--piip", default="piip-llava_clip-bl_512-256_7B")
    parser.add_argument("--baseline", default="llava-v1.5-clip-l-336")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = {}
    for role, name in (("piip", args.piip), ("baseline", args.baseline)):
        spec = get_architecture(name)
        tower = build_vision_tower(spec.tower).eval()
        pixels = torch.randn(1, 3, spec.tower.image_size, spec.tower.image_size)
        times = time_forward(tower, pixels, args.repeats)
        results[role] = {"arch": name, "gmacs": round(count_by_name(name).macs_paper / 1e9, 1),
                         "median_s": round(statistics.median(times), 3), "times_s": [round(t, 3) for t in times]}
        if role == "piip":
            results[role]["deform_attn_share"] = round(deform_share(tower, pixels), 4)
        del tower
    ratio = results["piip"]["median_s"] / results["baseline"]["median_s"]
    print(json.dumps(results, indent=2))
    print(f"threads={torch.get_num_threads()}  PIIP/LLaVA-1.5 forward time ratio: {ratio:.3f} "
          f"(MACs ratio {results['piip']['gmacs'] / results['baseline']['gmacs']:.3f}); "
          f"deformable attention share of the PIIP forward: {results['piip']['deform_attn_share']:.1%}")


if __name__ == "__main__":
    main()
