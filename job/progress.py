"""How a run tells people what it is doing: progress bars on a terminal, one JSON line per event otherwise.

Everything printed passes through `redact`, which blanks the values of the secret environment variables, so a
secret that found its way into an error message (a URL with a token, say) is never printed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from tqdm import tqdm

# Access key ids are not secret (every presigned URL carries one), so they are not blanked: that would break URLs.
SECRET_VARIABLES = (
    "ANCHOR_S3_SECRET_ACCESS_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "ANCHOR_LLM_API_KEY",
    "ANCHOR_WEBHOOK_URL",
)


class Redactor:
    def __init__(self, env: Mapping[str, str]) -> None:
        # Short values would blank ordinary words; real secrets are longer than this.
        self.secrets = sorted({env[k] for k in SECRET_VARIABLES if len(env.get(k, "")) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


class Reporter:
    """Events, warnings and progress of one run."""

    def __init__(
        self,
        *,
        env: Mapping[str, str] = os.environ,
        stream: TextIO | None = None,
        interactive: bool | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.redact = Redactor(env)
        self.context = dict(context or {})
        self.warnings: list[str] = []
        self._bars: dict[str, tqdm[Any]] = {}
        self._reported: dict[str, int] = {}

    def event(self, event: str, message: str = "", *, level: str = "info", **fields: Any) -> None:
        if self.interactive:
            self._close_bars()
            prefix = {"warning": "warning: ", "error": "error: "}.get(level, "")
            self.stream.write(self.redact(f"{prefix}{message or event}") + "\n")
        else:
            record = {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "level": level,
                "event": event,
            }
            record.update(self.context)
            if message:
                record["message"] = message
            record.update(fields)
            self.stream.write(self.redact(json.dumps(record, ensure_ascii=False, default=str)) + "\n")
        self.stream.flush()

    def warn(self, message: str) -> None:
        self.warnings.append(self.redact(message))
        self.event("warning", message, level="warning")

    def progress(self, step: str, done: int, total: int) -> None:
        """A bar per step on a terminal; otherwise a JSON line at each tenth of the way."""
        total = max(total, 1)
        if self.interactive:
            bar = self._bars.get(step)
            if bar is None:
                bar = tqdm(total=total, desc=f"{step:>8}", file=self.stream, leave=True, dynamic_ncols=True)
                self._bars[step] = bar
            bar.total = total
            bar.update(max(done - bar.n, 0))
            if done >= total:
                bar.close()
                del self._bars[step]
            return
        tenth = done * 10 // total
        if tenth > self._reported.get(step, -1):
            self._reported[step] = tenth
            self.event("progress", step=step, done=done, total=total, percent=round(100 * done / total))

    def _close_bars(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()

    def close(self) -> None:
        self._close_bars()
