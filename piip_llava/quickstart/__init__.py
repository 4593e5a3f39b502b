"""The offline CPU quickstart: SmolLM2-135M-Instruct + a small PIIP tower trained on easy-vqa."""
