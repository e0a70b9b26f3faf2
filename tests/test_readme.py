"""The README's code runs as shown."""

import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_readme_python_blocks_run_in_order(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 4
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)


def test_readme_shows_the_golden_jaxpr_and_quickstart_commands():
    text = README.read_text()
    assert "g:f64[2,2] = sigmoid f" in text
    assert 'python -m pip install -e ".[test]" && python -m pytest' in text
    assert "python -m pip install -e . && python examples/train_mlp.py" in text
