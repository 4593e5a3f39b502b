"""The paper's claim in miniature: parameter-inverted pyramid vs single-resolution towers, on CPU.

Same as ``piip-llava pyramid-repro`` (``piip_llava/commands/pyramid_repro.py``); see
``piip_llava/evidence/README.md`` for the task, the four towers and how to read the results.

    python benchmarks/pyramid_repro.py --scale ci                 # pipeline check, ~1.5 min
    python benchmarks/pyramid_repro.py                            # 4 variants x 3 seeds, ~50 min on 2 idle cores
    python benchmarks/pyramid_repro.py --paper-plot-only          # the released models' TextVQA vs FLOPs
    python benchmarks/pyramid_repro.py --report-only              # redraw results.md + plot from results.json

Writes ``results.json``, ``results.md``, ``pyramid_accuracy_vs_gmacs.png`` and
``paper_textvqa_vs_gflops.png`` to ``--output-dir`` (default ``outputs/pyramid_repro``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from piip_llava.commands import pyramid_repro

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    pyramid_repro.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.paper_json == pyramid_repro.DEFAULT_PAPER_JSON and not Path(args.paper_json).exists():
        args.paper_json = str(ROOT / pyramid_repro.DEFAULT_PAPER_JSON)
    return pyramid_repro.run(args)


if __name__ == "__main__":
    sys.exit(main())
