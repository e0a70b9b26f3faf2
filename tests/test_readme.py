"""The README's code runs as shown."""

import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_readme_python_blocks_run_in_order_and_print_what_is_shown(capsys):
    # A python block may be followed by a plain block: what the code prints.
    pairs = re.findall(r"```python\n(.*?)```\n(?:\n```\n(.*?)```)?", README.read_text(), re.S)
    assert len(pairs) >= 4 and sum(bool(shown) for _, shown in pairs) >= 3
    namespace: dict = {}
    for block, shown in pairs:
        exec(compile(block, str(README), "exec"), namespace)
        printed = capsys.readouterr().out
        if shown:
            assert printed.strip() == shown.strip(), block


def test_readme_shows_the_golden_jaxpr_and_quickstart_commands():
    text = README.read_text()
    assert "g:f64[2,2] = sigmoid f" in text
    assert 'python -m pip install -e ".[test]" && python -m pytest' in text
    assert "python -m pip install -e . && python examples/train_mlp.py" in text
