"""PIIP-LLaVA: parameter-inverted image pyramid vision towers for LLaVA-style multimodal LLMs."""

__version__ = "0.1.0"
