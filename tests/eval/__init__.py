"""Tests for the benchmark files and scoring layer (piip_llava.eval.benchmarks / .metrics)."""
