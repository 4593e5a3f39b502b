"""The Gradio demo: example photos, and a real browser (Debian Chromium via Playwright) using the app.

The browser test uploads a non-image, an oversize photo and a real photo, asks a question and watches
the answer stream into the chat, then saves a screenshot (also to docs/demo_screenshot.png when
PIIP_LLAVA_SAVE_SCREENSHOT is set; PIIP_LLAVA_DEMO_MODEL picks a trained model for that picture).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import free_port, png_bytes

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
MAX_UPLOAD_MB = 0.5
REPO = Path(__file__).resolve().parents[2]


def test_example_images_are_real_photos(tmp_path):
    from PIL import Image

    from piip_llava.serve.gradio_app import example_images

    examples = example_images(tmp_path)
    names = [Path(path).stem for path, _ in examples]
    assert {"chelsea", "astronaut", "coffee"} <= set(names)
    for path, question in examples:
        with Image.open(path) as image:
            assert min(image.size) >= 64 and question.endswith(("?", "."))
    assert example_images(tmp_path) == examples  # cached, not rewritten


def test_build_app_without_a_browser(generator):
    import gradio as gr

    from piip_llava.serve.gradio_app import DemoConfig, build_app

    app = build_app(generator, DemoConfig(concurrency=2))
    assert isinstance(app, gr.Blocks)
    kwargs = DemoConfig(max_upload_mb=3).launch_kwargs()
    assert kwargs["max_file_size"] == 6 * 2**20 and kwargs["show_error"] is True


# -- the browser test ------------------------------------------------------------------------------------


def ensure_chromium() -> str:
    """Debian's Chromium, installed with apt-get when missing and possible; otherwise skip saying why."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip(f"Chromium is not installed at {CHROMIUM} and apt-get is unavailable or not root: "
                    "install Debian's 'chromium' package to run the browser test.")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=1200, env=env, check=False)
        if result.returncode != 0:
            pytest.skip(f"could not install Chromium ({' '.join(command)} failed): {result.stderr.strip()[-400:]}")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"apt-get installed chromium but {CHROMIUM} is missing.")
    return CHROMIUM


class SlowStream:
    """A real generator whose streamed chunks are spaced out, so the browser can watch them arrive.

    The tiny model writes a whole answer in a fraction of a second: without the delay the page would only
    ever show the finished answer, and the test could not tell streaming from a single update.
    """

    def __init__(self, inner, delay_s: float):
        self.inner = inner
        self.delay_s = delay_s

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def stream(self, *args, **kwargs):
        for chunk in self.inner.stream(*args, **kwargs):
            time.sleep(self.delay_s)
            yield chunk


@pytest.fixture(scope="module")
def demo_url(generator, tmp_path_factory):
    previous = os.environ.get("GRADIO_ANALYTICS_ENABLED")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from piip_llava.serve.gradio_app import DemoConfig, build_app, example_images
    from piip_llava.serve.model_loading import ModelOptions, load_generator

    model = os.environ.get("PIIP_LLAVA_DEMO_MODEL")
    served = load_generator(ModelOptions(path=model, device="cpu")) if model else generator
    config = DemoConfig(max_upload_mb=MAX_UPLOAD_MB, examples=example_images(tmp_path_factory.mktemp("examples")))
    app = build_app(SlowStream(served, 0.08), config)
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **config.launch_kwargs())
    yield f"http://127.0.0.1:{port}/"
    app.close()
    if previous is None:
        os.environ.pop("GRADIO_ANALYTICS_ENABLED", None)
    else:
        os.environ["GRADIO_ANALYTICS_ENABLED"] = previous


def wait_for_status(page, text: str, timeout_ms: int = 60_000) -> str:
    page.wait_for_function("t => (document.querySelector('#status')?.innerText || '').includes(t)", arg=text,
                           timeout=timeout_ms)
    return page.inner_text("#status")


def bot_text(page) -> str:
    return page.evaluate("() => [...document.querySelectorAll('#chatbot [data-testid=bot]')].map(e => e.innerText).join('\\n')")


@pytest.mark.browser
def test_demo_in_a_real_browser(demo_url, chelsea_png, tmp_path):
    executable = ensure_chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs `pip install playwright` (dev extra)")

    not_image = tmp_path / "holiday.png"
    not_image.write_text("this is a text file with an image's name\n")
    oversize = tmp_path / "noise.png"  # random pixels do not compress: ~0.75 MB, over the 0.5 MB limit
    oversize.write_bytes(png_bytes(np.random.default_rng(0).integers(0, 256, (500, 500, 3), dtype=np.uint8)))
    assert MAX_UPLOAD_MB * 2**20 < oversize.stat().st_size < 2 * MAX_UPLOAD_MB * 2**20

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 960})
            page.goto(demo_url, wait_until="load", timeout=60_000)
            upload = "#image input[type=file]"
            page.wait_for_selector(upload, state="attached", timeout=60_000)

            page.set_input_files(upload, str(not_image))
            status = wait_for_status(page, "is not an image")
            assert "the uploaded file 'holiday.png' is not an image" in status

            page.set_input_files(upload, str(oversize))
            status = wait_for_status(page, "MB limit")
            size_mb = oversize.stat().st_size / 2**20
            assert f"'noise.png' is {size_mb:.2f} MB, over the {MAX_UPLOAD_MB:g} MB limit" in status

            question = "#question textarea"
            page.press(question, "Enter")
            assert "the message is empty" in wait_for_status(page, "the message is empty")

            page.set_input_files(upload, str(chelsea_png))
            wait_for_status(page, "Image 'chelsea.png' loaded (451x300)")

            page.fill("#max_new_tokens input[type=number]", "24")
            page.press("#max_new_tokens input[type=number]", "Enter")
            page.fill(question, "What animal is in the picture?")
            page.press(question, "Enter")
            seen: list[str] = []
            deadline = time.monotonic() + 120
            while "Answered by" not in page.inner_text("#status"):
                assert time.monotonic() < deadline, "no answer within 2 minutes"
                text = bot_text(page)
                if text and (not seen or text != seen[-1]):
                    seen.append(text)
                time.sleep(0.03)
            final = bot_text(page)
            assert final.strip(), "the answer should appear in the chat"
            partial = [t for t in seen if t != final]
            if not os.environ.get("PIIP_LLAVA_DEMO_MODEL"):  # a trained model may answer in one word
                assert len(partial) >= 2, f"expected the answer to grow in several steps, saw {seen!r}"
            assert "What animal is in the picture?" in page.inner_text("#chatbot")

            shot = tmp_path / "demo_screenshot.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if os.environ.get("PIIP_LLAVA_SAVE_SCREENSHOT"):
                (REPO / "docs").mkdir(exist_ok=True)
                shutil.copyfile(shot, REPO / "docs" / "demo_screenshot.png")

            page.click("#clear")
            wait_for_status(page, "Conversation cleared")
            assert bot_text(page) == ""

            page.get_by_text("What is in the cup?").click()  # an example: photo + question
            wait_for_status(page, "Image 'coffee.jpg' loaded (600x400)")
            assert page.input_value(question) == "What is in the cup?"
        finally:
            browser.close()
