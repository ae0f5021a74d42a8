"""Pure helpers behind the Config page: worker drafts to YAML, problems to display lines.

Kept free of Streamlit so they are cheap to test and reusable by a CLI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from desk.config import DeskConfig
from desk.config_versions import redact_text
from desk.core.errors import ConfigError

__all__ = [
    "WorkerDraft",
    "format_problems",
    "parse_mapping_text",
    "replace_workers_block",
    "risk_overrides",
    "to_flow_yaml",
]

# A top-level key at column 0 (`workers:`, `"store":`); comments, list items and indented lines are not.
_TOP_LEVEL_KEY = re.compile(r"""^(?P<key>[A-Za-z_][\w-]*|"[^"]+"|'[^']+')\s*:""")

# WorkerConfig's defaults: a form save leaves them out unless the file wrote them.
_WORKER_DEFAULTS: dict[str, Any] = {"weight": 1.0, "params": {}, "risk": {}, "enabled": True}


@dataclass
class WorkerDraft:
    """One worker as the form holds it: structured fields plus params / risk as YAML text."""

    name: str
    symbol: str
    strategy: str
    weight: float
    enabled: bool
    params_text: str
    risk_text: str
    problems: list[tuple[str, str]] = field(default_factory=list)

    def to_data(self, index: int, explicit_keys: frozenset[str] = frozenset()) -> dict[str, Any]:
        """Return the worker as config data; unparsable params / risk are recorded in `problems`.

        A key left at its default is written only if the file spelled it out
        (`explicit_keys`), so saving from the form does not add noise to the diff.
        """
        data: dict[str, Any] = {
            "name": self.name,
            "symbol": self.symbol,
            "strategy": self.strategy,
            "weight": self.weight,
        }
        for key, text in (("params", self.params_text), ("risk", self.risk_text)):
            try:
                data[key] = parse_mapping_text(text)
            except ValueError as exc:
                self.problems.append((f"workers[{index}].{key}", str(exc)))
        data["enabled"] = self.enabled
        return {
            key: value
            for key, value in data.items()
            if key in explicit_keys or key not in _WORKER_DEFAULTS or value != _WORKER_DEFAULTS[key]
        }


def parse_mapping_text(text: str) -> dict[str, Any]:
    """Parse YAML or JSON text (JSON is YAML) that must be a mapping; empty text is an empty mapping."""
    try:
        value = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ValueError(f"invalid YAML: {where}{getattr(exc, 'problem', None) or exc}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"must be a mapping like {{key: value}}, not {type(value).__name__}")
    return value


def to_flow_yaml(mapping: dict[str, Any]) -> str:
    """Return a mapping as one line of flow YAML (`{period: 28, oversold: 25}`), as the shipped config writes it."""
    if not mapping:
        return "{}"
    return yaml.safe_dump(mapping, default_flow_style=True, sort_keys=False, width=10_000).strip()


def risk_overrides(config: DeskConfig, index: int) -> dict[str, Any]:
    """Return the risk fields a worker sets explicitly (unset ones fall back to the `risk` section)."""
    return config.workers[index].risk.model_dump(exclude_none=True)


def replace_workers_block(text: str, workers: list[dict[str, Any]]) -> str:
    """Return `text` with only its top-level `workers:` block rewritten, comments elsewhere kept.

    The rest of the file is kept byte for byte, so the operator's comments and
    layout survive a form save. When the file has no recognisable `workers:`
    block the list is appended. The caller validates the result: this only
    edits text.
    """
    lines = text.splitlines(keepends=True)
    block = _dump_workers(workers)
    start = next((i for i, line in enumerate(lines) if _top_level_key(line) == "workers"), None)
    if start is None:
        separator = "" if not text or text.endswith("\n") else "\n"
        return text + separator + block
    end = start + 1
    while end < len(lines) and _top_level_key(lines[end]) is None:
        end += 1
    # Comment lines right above the next top-level key describe that key: keep them with it.
    while end > start + 1 and lines[end - 1].lstrip().startswith("#") and not lines[end - 1][:1].isspace():
        end -= 1
    trailing_blank = end < len(lines) and lines[end - 1].strip() == ""
    return "".join(lines[:start]) + block + ("\n" if trailing_blank else "") + "".join(lines[end:])


def _top_level_key(line: str) -> str | None:
    match = _TOP_LEVEL_KEY.match(line)
    return match.group("key").strip("\"'") if match else None


def _dump_workers(workers: list[dict[str, Any]]) -> str:
    """Dump workers in the shipped style: one block mapping each, params and risk as flow mappings."""
    out = ["workers:\n"]
    for worker in workers:
        first = True
        for key, value in worker.items():
            rendered = to_flow_yaml(value) if isinstance(value, dict) else _scalar(value)
            out.append(f"{'  - ' if first else '    '}{key}: {rendered}\n")
            first = False
    return "".join(out)


def _scalar(value: Any) -> str:
    """One YAML scalar, quoted when needed (`yes`, `1e3`, `a: b` keep their meaning)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...").strip()


def format_problems(error: ConfigError, worker_names: dict[int, str] | None = None) -> list[str]:
    """Return one display line per problem, `key.path: message`, naming the worker for `workers[i]` paths."""
    lines = []
    for path, message in error.problems:
        match = re.match(r"^workers\[(\d+)\]", path)
        name = (worker_names or {}).get(int(match.group(1))) if match else None
        if name and f"worker {name}" not in message and f"({name})" not in message:
            message = f"{message} (worker {name})"
        lines.append(redact_text(f"{path}: {message}" if path else message))
    return lines
