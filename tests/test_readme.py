"""The README's crossbar example runs and prints what the README says it prints."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_crossbar_example_runs_as_documented():
    text = README.read_text()
    block = re.search(r"## A crossbar in ten lines\s+```python\n(.*?)```", text, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, "README.md", "exec"), {})
    first_line = out.getvalue().splitlines()[0]
    assert f"prints `{first_line}`" in text
