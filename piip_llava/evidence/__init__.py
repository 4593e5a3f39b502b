"""Evidence for the paper's central claim, in miniature: an inverted pyramid beats a single-resolution
tower at equal cost, most of all on detail-dependent questions.

* :mod:`.synthetic` -- a deterministic, detail-dependent synthetic VQA task (LLaVA-format files);
* :mod:`.experiment` -- single-branch vs PIIP towers trained with the project's own two-stage recipe,
  accuracy per question type against vision MACs, and the report (``results.json``/``.md`` + plots).

See ``README.md`` in this folder.
"""
