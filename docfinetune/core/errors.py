"""Typed errors. Library code raises these; only the CLI turns them into a message and exit 2."""

from __future__ import annotations


class DocfinetuneError(Exception):
    """A problem the user can fix: the message names the path or setting and what to do."""


class ConfigError(DocfinetuneError):
    """A pipeline file or flag has a bad key or value."""

    def __init__(self, *problems: str) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(problems))


class BadInputError(DocfinetuneError):
    """An input file cannot be used: encrypted, scanned, corrupt, empty, missing, ..."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    @classmethod
    def from_problems(cls, path: object, problems: list[str], most: int = 5) -> "BadInputError":
        """One error for a file with several bad lines: the first `most` in line order ("line N:
        ..."), and how many more."""
        import re

        problems = sorted(problems, key=lambda p: int(m.group(1)) if (m := re.match(r"line (\d+)", p)) else 0)
        more = f" (and {len(problems) - most} more)" if len(problems) > most else ""
        return cls(path, "; ".join(problems[:most]) + more)


class IngestFailed(DocfinetuneError):
    """One or more inputs of an ingest call were bad; nothing was written."""

    def __init__(self, failures: list[BadInputError]) -> None:
        self.failures = failures
        super().__init__("\n".join(str(f) for f in failures))


class WorkspaceError(DocfinetuneError):
    """The workspace is missing something a stage needs, or cannot be written."""


class DiskFullError(WorkspaceError):
    """A write ran out of disk space (ENOSPC) or quota (EDQUOT). The writer has removed what it
    staged, so the workspace holds what it held before the command."""

    def __init__(self, path: object) -> None:
        self.path = str(path)
        super().__init__(f"{path}: disk full (no space left on device); free some space and run the command again")
