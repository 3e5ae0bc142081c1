"""Agent-based evaluation of the matching policies (same as ``citypark evaluate``).

    .venv/bin/python bench/evaluate.py [--seeds 3] [--synthetic-spaces 20000] [--quick]
"""

from __future__ import annotations

import typer

from app.demo.evaluate import main

if __name__ == "__main__":
    typer.run(main)
