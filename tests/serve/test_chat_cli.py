"""``piip-llava chat`` driven through standard input, as a script would."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from .conftest import png_bytes


@pytest.fixture(scope="module")
def coffee_png(tmp_path_factory):
    from skimage import data

    path = tmp_path_factory.mktemp("photos") / "coffee.png"
    path.write_bytes(png_bytes(data.coffee()))
    return path


def test_chat_script_end_to_end(tiny_checkpoint, chelsea_png, coffee_png, tmp_path):
    """The real command in a subprocess: ask, /image (bad then good), ask, /reset, /exit."""
    not_image = tmp_path / "notes.png"
    not_image.write_text("shopping list: milk, eggs\n")
    script = "\n".join([
        "What is in the picture?",
        f"/image {tmp_path / 'missing.png'}",
        f"/image {not_image}",
        f"/image {coffee_png}",
        "And what is in this one?",
        "Tell me more.",
        "/reset",
        "/exit",
        "This line comes after /exit and is never asked.",
    ]) + "\n"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    result = subprocess.run(
        [sys.executable, "-m", "piip_llava.cli", "chat", "--model", str(tiny_checkpoint), "--device", "cpu",
         "--image", str(chelsea_png), "--max-new-tokens", "6"],
        input=script, capture_output=True, text=True, timeout=300, env=env, check=False,
    )
    out, err = result.stdout, result.stderr
    assert f"[image {chelsea_png} loaded, 451x300; new conversation]" in out
    assert f"[image {coffee_png} loaded, 600x400; new conversation]" in out
    assert out.count("USER: ") == 3 and out.count("ASSISTANT: ") == 3
    assert "USER: This line comes after" not in out
    assert "[conversation cleared]" in out
    assert "missing.png': no such file" in err
    assert "notes.png' is not an image: its contents are not in an image format" in err
    assert result.returncode == 1, "piped input that hit errors exits 1 so scripts notice"


class _Lines(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_history_is_kept_and_reset(generator, chelsea_png, capsys):
    from piip_llava.serve.chat_cli import ChatConfig, ChatSession

    session = ChatSession(generator, ChatConfig(max_new_tokens=4))
    assert session.set_image(str(chelsea_png))
    first = session.ask("What is this?")
    session.ask("<image> Are you sure?")  # a typed placeholder is dropped, not treated as a second image
    assert [q for q, _ in session.conversation.turns] == ["What is this?", "Are you sure?"]
    messages = session.conversation.messages("Third?")
    assert messages[0]["content"] == "<image>\nWhat is this?" and messages[1]["content"] == first.strip()
    assert sum(m["content"].count("<image>") for m in messages) == 1
    session.handle("/reset")
    assert session.conversation.turns == [] and session.conversation.image is not None
    assert session.ask("   ") is None and "the message is empty" in capsys.readouterr().err
    session.handle("/unknown")
    assert "unknown command /unknown" in capsys.readouterr().err


def test_streams_chunks_as_they_come(generator, chelsea_png):
    from piip_llava.serve.chat_cli import ChatConfig, ChatSession

    class Recorder(io.StringIO):
        def __init__(self):
            super().__init__()
            self.writes: list[str] = []

        def write(self, text):
            self.writes.append(text)
            return super().write(text)

    out = Recorder()
    session = ChatSession(generator, ChatConfig(max_new_tokens=8), out=out, err=io.StringIO())
    session.set_image(str(chelsea_png))
    answer = session.ask("What is this?")
    start = out.writes.index("ASSISTANT: ")
    chunks = [w for w in out.writes[start + 1:] if w not in ("", "\n")]
    assert len(chunks) > 1 and "".join(chunks) == answer


def test_bad_image_fails_before_loading_the_model(tiny_checkpoint, tmp_path, capsys):
    from piip_llava.cli import main

    code = main(["chat", "--model", str(tiny_checkpoint), "--image", str(tmp_path / "nope.jpg")])
    assert code == 2
    assert "nope.jpg': no such file" in capsys.readouterr().err


def test_missing_default_model_says_to_run_the_quickstart(tmp_path, monkeypatch, capsys):
    from piip_llava.cli import main

    monkeypatch.chdir(tmp_path)
    for command in ("chat", "demo", "serve"):
        assert main([command]) == 2
        assert "run `piip-llava quickstart` first" in capsys.readouterr().err


def test_run_chat_reads_piped_lines(generator, chelsea_png, capsys):
    from piip_llava.serve.chat_cli import ChatConfig, run_chat

    code = run_chat(generator, ChatConfig(image=str(chelsea_png), max_new_tokens=4), stdin=_Lines("Hello?\n/exit\n"))
    out = capsys.readouterr().out
    assert code == 0 and "USER: Hello?" in out and "ASSISTANT: " in out
