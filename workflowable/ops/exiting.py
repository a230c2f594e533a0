"""Leaving a process that used Temporal's client, without CPython's teardown.

The Temporal Python SDK's Rust threads can call into Python while the interpreter finalizes
and abort it ("Fatal Python error: PyGILState_Release ... finalizing", sdk-python issue 300),
turning a successful script into exit status -6 now and then (about 1 run in 20 here). Once
everything is stopped and flushed, these end the process directly with the right status.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
from collections.abc import Coroutine
from typing import Any, NoReturn


def exit_now(code: int) -> NoReturn:
    """Release the embedded servers this process holds, flush the standard streams and end the
    process with `code`, skipping teardown."""
    if "workflowable.ops.devstack" in sys.modules:  # loaded only when a server was wanted
        sys.modules["workflowable.ops.devstack"].release_all()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def status_of(leaving: SystemExit) -> int:
    code = leaving.code
    if isinstance(code, int):
        return code
    if code is not None:
        print(code, file=sys.stderr)
        return 1
    return 0


def run(main: Coroutine[Any, Any, Any]) -> NoReturn:
    """Like `asyncio.run(main)` for a script's entry point, then `exit_now`: status 0, the
    status of a SystemExit, or 1 (with its traceback) if `main` raised."""
    try:
        asyncio.run(main)
        code = 0
    except SystemExit as leaving:
        code = status_of(leaving)
    except BaseException:
        traceback.print_exc()
        code = 1
    exit_now(code)
