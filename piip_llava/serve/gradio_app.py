"""The web demo: upload an image, chat about it, watch the answer stream in.

One Gradio app in one process around one :class:`~piip_llava.inference.Generator`. Every browser tab
has its own :class:`~piip_llava.serve.conversation.Conversation` (``gr.State``); the model is shared, and
Gradio's queue bounds how many answers are generated at once (``concurrency``).

Uploads are validated by our own code, not Gradio's image decoding: the image component hands us the
raw upload (``preprocess=False``) and :func:`~piip_llava.vision.image_processor.load_image` decides, so a
text file renamed ``.png`` or an oversize photo gets a sentence saying exactly that, and the server goes
on serving everyone else.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from ..errors import PiipLlavaError
from .conversation import Conversation, check_fits, clean_question
from .images import ImageRefused, open_image

log = logging.getLogger(__name__)

SYSTEM_FONTS = ("ui-sans-serif", "system-ui", "sans-serif")
"""The default Gradio theme pulls fonts from Google; system fonts keep the demo fully offline."""


@dataclass(frozen=True)
class DemoConfig:
    max_upload_mb: float = 10.0
    """Uploads above this are refused with a message; Gradio itself stops uploads above twice this."""
    concurrency: int = 1
    """Answers generated at once; more requests wait in the queue (one model, one device)."""
    max_queue: int = 64
    """Requests waiting beyond this are turned away by Gradio with a 'queue full' message."""
    title: str = "PIIP-LLaVA"
    examples: tuple[tuple[str, str], ...] = ()
    """(image path, question) pairs shown under the image box."""
    default_temperature: float = 0.0
    default_top_p: float = 1.0
    default_max_new_tokens: int = 256
    max_new_tokens_limit: int = 1024
    model_name: str | None = None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    def launch_kwargs(self) -> dict:
        """Arguments for ``Blocks.launch`` that belong to the app (theme, upload cap) rather than the host."""
        return {
            "theme": gr.themes.Soft(font=SYSTEM_FONTS, font_mono=("ui-monospace", "monospace")),
            "max_file_size": 2 * self.max_upload_bytes,
            "show_error": True,
            "ssr_mode": False,
            "footer_links": ["gradio"],
        }


def example_images(cache_dir: str | os.PathLike | None = None) -> tuple[tuple[str, str], ...]:
    """Real photos for the examples, written once to a cache folder (no network needed).

    scikit-image ships a few photographs; easy-vqa (the quickstart's data) ships the kind of image the
    quickstart model was trained on, so that example is the one a quickstart model answers well.
    """
    folder = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "piip-llava-demo-examples"
    folder.mkdir(parents=True, exist_ok=True)
    examples: list[tuple[str, str]] = []
    try:
        import easy_vqa

        path = easy_vqa.get_test_image_paths()[0]
        examples.append((str(path), "What is the color of the shape?"))
    except (ImportError, KeyError, IndexError, OSError):
        pass
    try:
        from PIL import Image
        from skimage import data
    except ImportError:
        return tuple(examples)
    for name, question in (("chelsea", "What animal is in the picture?"), ("astronaut", "Describe this photo."),
                           ("coffee", "What is in the cup?")):
        target = folder / f"{name}.jpg"
        if not target.exists():
            partial = target.with_suffix(".tmp")
            Image.fromarray(getattr(data, name)()).save(partial, format="JPEG", quality=92)
            partial.replace(target)  # atomic: two demos starting at once never see half a file
        examples.append((str(target), question))
    return tuple(examples)


def _upload_path(payload: Any) -> str | None:
    """The server-side path of an image component's raw (un-preprocessed) value."""
    if payload is None:
        return None
    if isinstance(payload, dict):
        return payload.get("path")
    return getattr(payload, "path", None) or (payload if isinstance(payload, str) else None)


def _chat_messages(conversation: Conversation, pending: str | None = None, partial: str | None = None) -> list[dict]:
    messages: list[dict] = []
    for question, answer in conversation.turns:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    if pending is not None:
        messages.append({"role": "user", "content": pending})
        if partial is not None:
            messages.append({"role": "assistant", "content": partial})
    return messages


def _error(text: str) -> str:
    return f"**Error:** {text}"


def build_app(generator, config: DemoConfig | None = None) -> gr.Blocks:
    """The demo's ``gr.Blocks`` (queue configured); launch it with ``config.launch_kwargs()``."""
    from ..inference import GenerationOptions

    config = config or DemoConfig()
    name = config.model_name or generator.loaded.name

    def on_image(payload):
        """Validate a new upload or example; a new image starts a new conversation."""
        path = _upload_path(payload)
        if path is None:  # removed (by the user, or by us after a refusal): keep any error message shown
            return Conversation(), [], gr.skip(), gr.skip()
        shown = os.path.basename((payload.get("orig_name") if isinstance(payload, dict) else None) or path)
        try:
            image = open_image(path, f"the uploaded file {shown!r}", max_bytes=config.max_upload_bytes)
        except ImageRefused as error:
            return Conversation(), [], _error(str(error)), None
        note = f"Image {shown!r} loaded ({image.width}x{image.height}); ask a question about it."
        return Conversation(image=image), [], note, gr.skip()

    def _answer(conversation: Conversation, question: str, temperature: float, top_p: float, max_new_tokens: int):
        """Stream ``question``'s answer: yields (chatbot, status); records the turn when done."""
        options = GenerationOptions(max_new_tokens=int(max_new_tokens), temperature=float(temperature), top_p=float(top_p))
        messages = conversation.messages(question)
        images = conversation.images()
        check_fits(generator, messages, images, options.max_new_tokens)
        yield _chat_messages(conversation, question, ""), "Generating..."
        answer = ""
        for chunk in generator.stream(messages, images, options):
            answer += chunk
            yield _chat_messages(conversation, question, answer), "Generating..."
        conversation.add_turn(question, answer)
        hint = "" if conversation.image is not None else " (no image: upload one to ask about it)"
        yield _chat_messages(conversation), f"Answered by {name}{hint}."

    def respond(text, conversation: Conversation, temperature, top_p, max_new_tokens):
        try:
            question = clean_question(text)
        except PiipLlavaError as error:
            yield _chat_messages(conversation), conversation, _error(str(error)), gr.skip()
            return
        try:
            first = True
            for chat, status in _answer(conversation, question, temperature, top_p, max_new_tokens):
                yield chat, conversation, status, ("" if first else gr.skip())
                first = False
        except PiipLlavaError as error:
            yield _chat_messages(conversation), conversation, _error(str(error)), text
        except Exception as error:  # a bug or an out-of-memory: say what happened, keep serving
            log.exception("generation failed")
            yield _chat_messages(conversation), conversation, _error(f"generation failed: {type(error).__name__}: {error}"), text

    def regenerate(conversation: Conversation, temperature, top_p, max_new_tokens):
        if not conversation.turns:
            yield _chat_messages(conversation), conversation, _error("nothing to regenerate yet: ask a question first.")
            return
        question, previous = conversation.turns.pop()
        try:
            for chat, status in _answer(conversation, question, temperature, top_p, max_new_tokens):
                yield chat, conversation, status
        except Exception as error:
            conversation.add_turn(question, previous)
            if not isinstance(error, PiipLlavaError):
                log.exception("generation failed")
            yield _chat_messages(conversation), conversation, _error(f"regenerating failed: {type(error).__name__}: {error}")

    def clear(conversation: Conversation):
        conversation.reset(conversation.image)
        return [], conversation, "Conversation cleared." + (" The image is kept." if conversation.image is not None else "")

    with gr.Blocks(title=config.title, analytics_enabled=False) as demo:
        gr.Markdown(f"# {config.title}\nChat with **{name}** about an image. A new image starts a new conversation.")
        state = gr.State(Conversation())
        with gr.Row():
            with gr.Column(scale=2):
                image = gr.Image(type="filepath", label="Image", sources=["upload", "clipboard"], height=320,
                                 elem_id="image")
                with gr.Accordion("Generation", open=True):
                    temperature = gr.Slider(0.0, 1.5, value=config.default_temperature, step=0.05, label="Temperature",
                                            info="0 = greedy (deterministic)", elem_id="temperature")
                    top_p = gr.Slider(0.05, 1.0, value=config.default_top_p, step=0.05, label="Top-p", elem_id="top_p")
                    max_new_tokens = gr.Slider(8, config.max_new_tokens_limit, value=config.default_max_new_tokens,
                                               step=8, label="Max new tokens", elem_id="max_new_tokens")
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label=name, height=460, elem_id="chatbot", buttons=["copy"], feedback_options=None)
                status = gr.Markdown(elem_id="status")
                with gr.Row():
                    question = gr.Textbox(label="Question", placeholder="Ask about the image and press Enter", show_label=False, scale=5,
                                          elem_id="question", lines=1, max_lines=6)
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                with gr.Row():
                    regen = gr.Button("Regenerate", elem_id="regenerate")
                    clear_btn = gr.Button("Clear", elem_id="clear")
        if config.examples:
            gr.Examples(examples=[list(e) for e in config.examples], inputs=[image, question], label="Examples")

        image.change(on_image, inputs=image, outputs=[state, chatbot, status, image], preprocess=False,
                     concurrency_limit=None, show_progress="hidden", api_visibility="private")
        chat_inputs = [question, state, temperature, top_p, max_new_tokens]
        chat_outputs = [chatbot, state, status, question]
        # One concurrency group for every event that runs the model, so --concurrency bounds them together.
        generating = {"api_visibility": "private", "concurrency_id": "generate", "show_progress": "minimal",
                      "show_progress_on": chatbot}
        question.submit(respond, chat_inputs, chat_outputs, **generating)
        send.click(respond, chat_inputs, chat_outputs, **generating)
        regen.click(regenerate, [state, temperature, top_p, max_new_tokens], [chatbot, state, status], **generating)
        clear_btn.click(clear, state, [chatbot, state, status], queue=False, api_visibility="private")
        chatbot.clear(clear, state, [chatbot, state, status], queue=False, api_visibility="private")  # its trash icon
    demo.queue(default_concurrency_limit=config.concurrency, max_size=config.max_queue)
    return demo
