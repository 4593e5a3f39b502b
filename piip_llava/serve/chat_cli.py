"""Terminal chat: stream answers about an image, keep the history, switch images with ``/image``.

Reads lines from standard input, so the same loop serves a person at a terminal (with a prompt and
line editing) and a script piping questions in (each question is echoed, so the transcript reads the
same). Errors a user can fix -- a bad image path, an empty question, a conversation longer than the
model's context -- are reported and the chat goes on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

from ..errors import PiipLlavaError
from .conversation import Conversation, check_fits, clean_question

HELP = """commands:
  /image PATH   load another image (starts a new conversation)
  /reset        forget the conversation, keep the image
  /help         this list
  /exit         quit (also /quit, or end of input)"""


@dataclass(frozen=True)
class ChatConfig:
    image: str | None = None
    temperature: float = 0.0
    """0 = greedy: the most reliable setting for short factual answers about an image."""
    top_p: float = 1.0
    max_new_tokens: int = 512


def read_image(path: str):
    """Load ``path`` as an RGB image; ``~`` and surrounding quotes (from drag-and-drop) are accepted."""
    from .images import open_image

    shown = path.strip().strip("'\"")
    return open_image(os.path.expanduser(shown), f"image {shown!r}")


class ChatSession:
    """The read-answer loop around one :class:`~piip_llava.inference.Generator`."""

    def __init__(self, generator, config: ChatConfig, *, out: TextIO | None = None, err: TextIO | None = None):
        from ..inference import GenerationOptions

        self.generator = generator
        self.config = config
        self.options = GenerationOptions(max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                                         top_p=config.top_p)
        self.conversation = Conversation()
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.errors = 0

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _error(self, text: str) -> None:
        self.errors += 1
        print(f"error: {text}", file=self.err, flush=True)

    def set_image(self, path: str) -> bool:
        """Load a new image and start a new conversation; on failure keep the current one."""
        try:
            image = read_image(path)
        except PiipLlavaError as error:
            self._error(str(error))
            return False
        self.conversation.reset(image)
        self._say(f"[image {path.strip()} loaded, {image.width}x{image.height}; new conversation]")
        return True

    def ask(self, text: str) -> str | None:
        """Stream the answer to ``text`` to ``out`` and remember the turn; ``None`` if it was refused."""
        try:
            question = clean_question(text)
            messages = self.conversation.messages(question)
            images = self.conversation.images()
            check_fits(self.generator, messages, images, self.options.max_new_tokens)
        except PiipLlavaError as error:
            self._error(str(error))
            return None
        print("ASSISTANT: ", end="", file=self.out, flush=True)
        answer = ""
        for chunk in self.generator.stream(messages, images, self.options):
            answer += chunk
            print(chunk, end="", file=self.out, flush=True)
        print(file=self.out, flush=True)
        self.conversation.add_turn(question, answer)
        return answer

    def handle(self, line: str) -> bool:
        """Act on one input line; ``False`` means quit."""
        stripped = line.strip()
        if not stripped:
            return True
        if stripped.startswith("/"):
            command, _, argument = stripped.partition(" ")
            command = command.lower()
            if command in ("/exit", "/quit"):
                return False
            if command == "/image":
                if argument.strip():
                    self.set_image(argument)
                else:
                    self._error("/image needs a path, e.g. /image photos/cat.jpg")
            elif command == "/reset":
                self.conversation.reset(self.conversation.image)
                self._say("[conversation cleared]")
            elif command == "/help":
                self._say(HELP)
            else:
                self._error(f"unknown command {command}.\n{HELP}")
            return True
        self.ask(stripped)
        return True

    def run(self, lines: Iterable[str], *, echo: bool) -> int:
        """Process ``lines`` until ``/exit`` or their end; ``echo`` prints each question (piped input)."""
        for line in lines:
            if echo and line.strip() and not line.strip().startswith("/"):
                self._say(f"USER: {line.strip()}")
            if not self.handle(line):
                break
        return 0


def interactive_lines(prompt: str = "USER: ") -> Iterable[str]:
    """Lines typed at a terminal, with line editing where ``readline`` exists; ends on Ctrl-D."""
    try:
        import readline  # noqa: F401  (enables arrow keys and history for input())
    except ImportError:
        pass
    while True:
        try:
            yield input(prompt)
        except EOFError:
            print()
            return


def run_chat(generator, config: ChatConfig, *, stdin: TextIO | None = None) -> int:
    """Run the chat on ``stdin``; returns 1 when piped input hit errors (so scripts notice), else 0."""
    stdin = stdin or sys.stdin
    session = ChatSession(generator, config)
    interactive = stdin.isatty()
    if config.image and not session.set_image(config.image):
        return 2
    if interactive:
        session._say(f"chatting with {generator.loaded.name}; /help lists the commands.")
    lines = interactive_lines() if interactive else stdin
    session.run(lines, echo=not interactive)
    return 1 if (session.errors and not interactive) else 0
