"""``PiipTrainer``: the transformers ``Trainer`` with LLaVA-1.5's two additions, through public hooks.

* ``create_optimizer``: separate learning rates for the projector (``mm_projector_lr``) and the vision
  tower (``vision_tower_lr``), weight decay only on matrices (never on norms, biases or gates).
* ``get_train_dataloader``: ``group_by_modality_length`` -- batches hold only image or only text
  samples of similar length, which keeps padding (and ZeRO-3 idle time) low.

Everything else (DeepSpeed, accelerate, checkpointing, exact resume, logging) is the stock Trainer.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from transformers import Trainer

from ..data.sampler import LengthGroupedSampler


def parameter_groups(model: torch.nn.Module, args) -> list[dict]:
    """Optimizer groups by (component, decay). Only trainable parameters are included."""
    lr = {"projector": args.mm_projector_lr, "vision_tower": args.vision_tower_lr}
    groups: dict[tuple[str, bool], list[torch.nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        component = next((c for c in lr if f"{c}." in f".{name}" and lr[c] is not None), "default")
        decay = parameter.ndim >= 2 and "norm" not in name.lower() and not name.endswith(("ca_weight", "cffn_weight"))
        groups.setdefault((component, decay), []).append(parameter)
    out = []
    for (component, decay), params in sorted(groups.items()):
        group = {"params": params, "weight_decay": args.weight_decay if decay else 0.0, "name": f"{component}{'' if decay else '_no_decay'}"}
        if component != "default":
            group["lr"] = lr[component]
        out.append(group)
    return out


class PiipTrainer(Trainer):
    def create_optimizer(self, model=None):
        if self.optimizer is None:
            optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, self.model)
            self.optimizer = optimizer_cls(parameter_groups(self.model, self.args), **optimizer_kwargs)
        return self.optimizer

    def get_train_dataloader(self) -> DataLoader:
        if not getattr(self.args, "group_by_modality_length", False):
            return super().get_train_dataloader()
        dataset = self.train_dataset
        sampler = LengthGroupedSampler(
            dataset.modality_lengths,
            batch_size=self.args.train_batch_size,
            world_size=self.args.world_size * self.args.gradient_accumulation_steps,
            seed=self.args.seed,
        )
        loader = DataLoader(
            dataset,
            batch_size=self._train_batch_size,
            sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
            drop_last=self.args.dataloader_drop_last,
            persistent_workers=self.args.dataloader_persistent_workers and self.args.dataloader_num_workers > 0,
        )
        return self.accelerator.prepare(loader)
