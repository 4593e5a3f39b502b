"""The README's main job at a reduced size: both stages, evaluation, plot and summary, offline."""

import json

import pytest


@pytest.mark.slow
def test_quickstart_ci_preset_runs_end_to_end(tmp_path):
    from piip_llava.cli import main
    from piip_llava.model import PiipLlavaForConditionalGeneration

    out = tmp_path / "quickstart"
    assert main(["quickstart", "--preset", "ci", "--output-dir", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accuracy"]["n"] == 40
    assert set(summary["accuracy"]) >= {"overall", "yes/no"}
    assert summary["final_loss"]["stage1"] is not None and summary["final_loss"]["stage2"] is not None
    assert (out / "loss.png").stat().st_size > 10_000
    assert (out / "stage1" / "model.safetensors").exists()
    model = PiipLlavaForConditionalGeneration.from_pretrained(out)
    assert model.config.conversation_template == "chatml"
    assert model.config.architecture == "piip-quickstart_64-32"
    # The output directory is a checkpoint the other front ends accept.
    from piip_llava.inference import Generator, load_pretrained_model, user_message

    import easy_vqa
    from pathlib import Path

    generator = Generator(load_pretrained_model(str(out)))
    row = json.loads((out / "data" / "test.jsonl").read_text().splitlines()[0])
    image = Path(easy_vqa.__file__).parent / "data" / row["image"]
    answer = generator.generate([[user_message(row["text"], 1)]], [[image]])
    assert isinstance(answer[0], str)
