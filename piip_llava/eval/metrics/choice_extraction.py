"""Rule-based option-letter extraction for MMBench (the OpenCompass / lmms-eval ``can_infer``).

The MMBench server first tries to read a letter from the model's reply and only asks a GPT judge
when the rules cannot decide. The rules are reproduced exactly, quirks included, because they
decide which replies count as right or wrong:

* :func:`infer_option_letter` always accepts ``A``-``E`` (``E`` even for a two-option question),
  only matches upper-case letters that form a whole whitespace-separated token, and distrusts a
  lone ``A`` in replies longer than three tokens (it may be the article).
* :func:`infer_option_from_text` accepts the single option whose lower-cased text is a substring of
  the lower-cased reply; zero or several matches decide nothing.

Nothing here ever guesses: an undecidable reply returns ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping

OPTION_LETTERS = "ABCDE"
"""Letters ``can_infer_option`` accepts (its ``num_choice=5`` default)."""

_API_FAILURE = "Failed to obtain answer via API"

# fmt: off
_WRAPPERS = (
    ("", "."), ("", ","), ("", ":"), ("", ")"), ("", ")."), ("(", ")"), ("(", ")."),
    (":", ""), (":", ","), (":", "."), (":", ")"), (":", ")."),
)
# fmt: on
"""``(prefix, suffix)`` token shapes tried in order after the bare-letter rule."""


def _single_match(tokens: set[str], prefix: str = "", suffix: str = "") -> str | None:
    hits = [c for c in OPTION_LETTERS if prefix + c + suffix in tokens]
    return hits[0] if len(hits) == 1 else None


def infer_option_letter(answer: str) -> str | None:
    """The option letter written in ``answer`` (``can_infer_option``), or ``None``."""
    if _API_FAILURE in answer:
        return None
    token_list = answer.split()
    tokens = set(token_list)
    letter = _single_match(tokens)
    if letter is not None and not ("A" in tokens and len(token_list) > 3):
        return letter
    for prefix, suffix in _WRAPPERS:
        letter = _single_match(tokens, prefix, suffix)
        if letter is not None:
            return letter
    return None


def infer_option_from_text(answer: str, choices: Mapping[str, str]) -> str | None:
    """The one option whose text occurs in ``answer`` (``can_infer_text``), or ``None``.

    ``choices`` maps present option letters (A-D) to their text; absent options must be left
    out, not passed as ``"nan"``, or that string would match words like "banana".
    """
    reply = answer.lower()
    hits = [letter for letter, text in choices.items() if str(text).lower() in reply]
    return hits[0] if len(hits) == 1 else None


def infer_option(answer: str, choices: Mapping[str, str]) -> str | None:
    """``can_infer``: the letter rule first, then the option-text rule."""
    return infer_option_letter(answer) or infer_option_from_text(answer, choices)
