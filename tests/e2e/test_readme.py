"""The README's example runs as written, against the test servers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from pydantic import SecretStr

from tests.conftest import database_of_its_own, unique
from tests.e2e.test_cli import environment

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_example_runs(settings, database_url, task_queue, tmp_path):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    code = code.replace('"orders"', repr(unique("readme"))).replace('task_queue="workflowable"', f"task_queue={task_queue!r}")
    script = tmp_path / "example.py"
    script.write_text(code)
    # A database of its own: the example's event is named OrderPlaced, as the demo's is, and
    # one database holds one event type of a name.
    with database_of_its_own(database_url, "readme") as url:
        own = settings.model_copy(update={"database_url": SecretStr(url)})
        result = subprocess.run([sys.executable, str(script)], env=environment(own, WORKFLOWABLE_TASK_QUEUE=task_queue),
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    _, status, tokens = result.stdout.strip().split(" ", 2)
    assert status == "Completed"
    assert tokens == "{'order_id': '1', 'amount': '99.5', 'reservation': 'R-1', 'tracking': 'T-R-1'}"
