"""Pages as a person sees them: headless Chromium (Debian's; scripts/test installs it when run
as root) runs a page's scripts and gives back its DOM, and saves a screenshot beside it."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "the browser tests need Debian's chromium (scripts/test installs it when run as root)"
    return found


def render(url: str, tmp: Path, screenshot: str, *, wait_ms: int | None = None, height: int = 3200) -> str:
    """The DOM of `url` after its scripts ran, and `tmp/screenshot` beside it. `wait_ms`: the
    virtual time the page gets first (a single-page app fetching its data)."""
    args = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp / 'chromium-profile'}", f"--window-size=1280,{height}",
    ]
    if wait_ms is not None:
        args.append(f"--virtual-time-budget={wait_ms}")
    subprocess.run([*args, f"--screenshot={tmp / screenshot}", url], capture_output=True, timeout=120, check=False)
    result = subprocess.run([*args, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def text_of(dom: str) -> str:
    """The page's visible text: scripts, styles and tags removed, entities decoded."""
    text = re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", text))
