"""The documentation stays inside the repository and true to the schema the code writes.

Every relative link in README.md and docs/*.md names a file of this checkout (and, with a
#fragment, one of its headings); docs/design.md names every field a snapshot carries: the
model's own fields and every key the demo fleet's snapshots (real collector, real fleet
merge) write, sources' extras included.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from keck_tui.model import _ROW_ALWAYS, _ROW_OPTIONAL, SYNTHETIC_IDS, Snapshot

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
DESIGN = REPO / "docs" / "design.md"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    in_code = False
    out = set()
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            out.add(_slug(line.lstrip("#")))
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve_inside_the_repository(page: Path) -> None:
    bad = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # http(s):, mailto:
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if REPO not in dest.parents and dest != REPO:
            bad.append(f"{target}: outside the repository")
        elif not dest.exists():
            bad.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in _anchors(dest):
            bad.append(f"{target}: no heading #{fragment} in {dest.name}")
    assert not bad, f"{page.name}: " + "; ".join(bad)


def test_nothing_points_at_a_design_document_outside_the_repository() -> None:
    texts = [p for p in PAGES] + sorted((REPO / "keck_tui").rglob("*.py"))
    hits = [str(p.relative_to(REPO)) for p in texts
            if "DESIGN.md" in p.read_text() or "../shared" in p.read_text()]
    assert not hits


def _keys(data: Any) -> Iterator[str]:
    if isinstance(data, dict):
        for k, v in data.items():
            yield k
            if k not in ("components", "labels", "chassis", "flags"):  # values keyed by data
                yield from _keys(v)
    elif isinstance(data, list):
        for v in data:
            yield from _keys(v)


def test_design_names_every_field_a_snapshot_carries() -> None:
    from keck_tui.demo import DemoFleet

    fleet = DemoFleet(3, 1_781_532_000.0, 1.0)
    snaps: list[Snapshot] = [fleet.step() for _ in range(3)]
    snaps += [s for n in fleet.nodes if (s := fleet.node_snapshot(n.spec.name)) is not None]
    written = {k for s in snaps for k in _keys(s.to_json())}
    written |= set(_ROW_ALWAYS) | set(_ROW_OPTIONAL)
    written |= {f for f in Snapshot.__dataclass_fields__ if f != "extra"}
    text = DESIGN.read_text()
    missing = sorted(k for k in written if f'"{k}"' not in text and f"`{k}`" not in text)
    assert not missing, f"docs/design.md, 'Snapshot JSON', does not name: {missing}"
    levels = {r.level for s in snaps for _, r in s.root.walk()}
    assert not [lv for lv in levels if f"`{lv}`" not in text]
    assert not [i for i in SYNTHETIC_IDS if f"`{i}`" not in text]


def _flags(parser: Any) -> tuple[set[str], dict[str, set[str]]]:
    """The top-level parser's flags, and each subcommand's (nested ones by their own name)."""
    import argparse

    subs: dict[str, set[str]] = {}

    def walk(p: argparse.ArgumentParser) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    subs[name] = {f for a in sub._actions for f in a.option_strings}
                    walk(sub)

    walk(parser)
    return {f for a in parser._actions for f in a.option_strings}, subs


#: A keck-top command as the docs write it: at the start of a code span or line, after a prompt,
#: sudo or a venv path (not the "keck-top" of a namespace or a secret's name).
COMMAND = re.compile(r"(?:^|`|\$ |sudo |\.venv/bin/|make run ARGS=\")keck-top((?: [^`|;&\"]*)?)")


def test_every_flag_the_docs_give_a_command_is_one_it_has() -> None:
    """`keck-top SUB … --flag` in README.md and docs/*.md: SUB (or keck-top itself) has --flag."""
    from keck_tui.cli import build_parser

    top, subs = _flags(build_parser())
    bad = []
    for page in PAGES:
        for n, line in enumerate(page.read_text().splitlines(), 1):
            for args in COMMAND.findall(line.strip()):
                words = args.split()
                sub = next((w for w in reversed(words[:2]) if w in subs), None)  # debug parse-…: the inner one
                allowed = subs[sub] if sub else top
                for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", args):
                    if flag not in allowed:
                        bad.append(f"{page.name}:{n}: keck-top {sub or ''} has no {flag}")
    assert not bad, "\n".join(bad)


def test_the_readmes_example_configuration_loads(tmp_path: Path) -> None:
    """The README's config.toml example is a valid configuration (unknown keys are errors)."""
    from keck_tui.config import load_config

    text = (REPO / "README.md").read_text()
    section = text[text.index("## Configuration"):]
    block = re.search(r"```toml\n(.*?)```", section, re.S)
    assert block is not None
    path = tmp_path / "config.toml"
    path.write_text(block.group(1))
    settings = load_config(path, explicit=True)
    assert settings.interval == 1.0 and settings.idle == "separate"
