"""Shared by the benchmarks: the machine's description and RESULTS.md's sections."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    cpu = platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


def write_section(heading: str, body: str) -> None:
    """Replace the section that starts with `heading` (sections start with '## ') where it
    stands, or append it."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    parts = re.split(r"(?m)^(?=## )", text)
    fresh = body.rstrip() + "\n\n"
    if any(p.startswith(heading) for p in parts):
        parts = [fresh if p.startswith(heading) else p for p in parts]
    else:
        parts.append(fresh)
    RESULTS.write_text("".join(parts).rstrip() + "\n", encoding="utf-8")
    print(f"updated {RESULTS}")


def publish(heading: str, lines: list[str], write: bool) -> int:
    """Print a report's lines; with `write`, also make them RESULTS.md's section `heading`."""
    text = "\n".join(lines) + "\n"
    print(text)
    if write:
        write_section(heading, text)
    return 0
