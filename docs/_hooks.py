"""MkDocs hook: the figures the pages show are the ones the experiments wrote, not copies.

PNG files under ``experiments/results/`` and ``latency_tables/validation/`` join the site at the same
relative path, so a page links them as ``experiments/results/NAME.png``.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
FIGURE_DIRS = ("experiments/results", "latency_tables/validation", "benchmarks/results")


def on_files(files, config):
    for folder in FIGURE_DIRS:
        for png in sorted((ROOT / folder).rglob("*.png")):
            files.append(File(str(png.relative_to(ROOT)), src_dir=str(ROOT), dest_dir=config["site_dir"],
                              use_directory_urls=config["use_directory_urls"]))
    return files
