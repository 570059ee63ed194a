"""The closing summary of a local run: sample, outcome, variant counts, QC headline, outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genopipe.contracts import COMPLETED


def _number(value: Any, template: str) -> str:
    return "n/a" if value is None else template.format(value)


def format_summary(event: dict[str, Any], elapsed_s: float, files: list[Path] | None = None) -> str:
    detail = event.get("detail", {})
    completed = event.get("detail-type") == COMPLETED
    lines = [
        f"sample     {detail.get('sample', '?')}",
        f"outcome    {event.get('detail-type', '?')} in {elapsed_s:.1f} s",
    ]
    qc = detail.get("qc") or {}
    if completed:
        lines.append(
            f"variants   {_number(qc.get('snps'), '{}')} SNPs, {_number(qc.get('indels'), '{}')} indels, "
            f"Ti/Tv {_number(qc.get('titv'), '{:.2f}')}"
        )
        lines.append(
            f"qc         {_number(qc.get('read_pairs'), '{:,}')} read pairs, "
            f"{_number(qc.get('percent_mapped'), '{:.2f}')}% mapped, "
            f"mean depth {_number(qc.get('mean_depth'), '{:.1f}')}x"
        )
    error = detail.get("error") or {}
    if error:
        lines.append(
            f"error      {error.get('step', '?')}: {error.get('type', '?')}: {error.get('message', '')}"
        )
    if files:
        folder = Path(*_common_parts(files))
        lines.append(f"outputs    {folder}/ ({len(files)} files)")
        for path in sorted(files):
            lines.append(f"           {path.relative_to(folder)}")
    elif detail.get("outputs"):
        lines.append("outputs")
        for name, uri in detail["outputs"].items():
            lines.append(f"  {name:<9}{uri}")
    return "\n".join(lines)


def _common_parts(files: list[Path]) -> tuple[str, ...]:
    parts = files[0].parent.parts
    for path in files[1:]:
        other = path.parent.parts
        n = 0
        while n < min(len(parts), len(other)) and parts[n] == other[n]:
            n += 1
        parts = parts[:n]
    return parts
