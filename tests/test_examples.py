"""Every script in examples/ runs (in its fast mode) and does what it says."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import functrans as ft
from functrans.ir import Literal

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))
HAVE_DOT = shutil.which("dot") is not None
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def run(script: str, *args: str, cwd: Path, path: str | None = None) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    if path is not None:
        env["PATH"] = path
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"{script} {args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def number_after(label: str, text: str) -> float:
    match = re.search(rf"{re.escape(label)}\s*([-+0-9.e]+)", text)
    assert match, f"no {label!r} in output:\n{text}"
    return float(match.group(1))


COVERED = {
    "train_mlp.py",
    "backprop_by_hand.py",
    "per_example_gradients.py",
    "newton.py",
    "graph.py",
}


def test_the_main_examples_exist():
    assert set(SCRIPTS) >= COVERED


@pytest.mark.parametrize("script", sorted(set(SCRIPTS) - COVERED))
def test_other_examples_run(script, tmp_path):
    """Examples without a dedicated test below still run to completion with defaults."""
    assert run(script, cwd=tmp_path).strip()


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script, tmp_path):
    out = run(script, "--help", cwd=tmp_path)
    assert out.startswith("usage:") and "--help" in out


def test_train_mlp(tmp_path):
    out_dir = tmp_path / "run"
    out = run("train_mlp.py", "--epochs", "1", "--out", str(out_dir), cwd=tmp_path)
    assert "epoch 1/1" in out and "examples/s" in out and "loss" in out
    assert "train_step traced 1 time(s)" in out  # one shape per step: compiled once
    assert number_after("final test accuracy:", out) > 0.5  # chance is 0.1
    assert number_after("final train accuracy:", out) > 0.5
    with open(out_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1
    assert {"epoch", "train_loss", "test_accuracy", "examples_per_second"} <= set(rows[0])
    assert float(rows[0]["test_accuracy"]) == pytest.approx(
        number_after("final test accuracy:", out), abs=1e-4
    )
    params = np.load(out_dir / "params.npz")
    assert params["W1"].shape == (64, 64) and params["W2"].shape == (64, 10)
    assert params["W1"].dtype == np.float32
    assert (out_dir / "training.png").exists() == HAVE_MATPLOTLIB


def test_train_mlp_defaults_reach_95_percent(tmp_path):
    out = run("train_mlp.py", "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert number_after("final test accuracy:", out) >= 0.95
    with open(tmp_path / "run" / "metrics.csv") as f:
        assert len(list(csv.DictReader(f))) == 40


def test_backprop_by_hand(tmp_path):
    out = run("backprop_by_hand.py", cwd=tmp_path)
    assert "(agree)" in out
    assert number_after("largest difference between hand formulas and ft.grad:", out) < 1e-12
    for formula in (
        "∂L/∂W = δ xᵀ",
        "∂L/∂x = Wᵀ δ",
        "∂L/∂W = δ₂ z₁ᵀ + δ₁ xᵀ",
        "∂L/∂b = column sum of Δ",
        "∂L/∂W₁ = δ₁ xᵀ",
    ):
        assert formula in out
    assert out.count("ft.make_jaxpr(ft.grad(loss") == 4
    assert "= matmul" in out and "= sigmoid" in out
    quiet = run("backprop_by_hand.py", "--no-jaxprs", "--seed", "3", cwd=tmp_path)
    assert "ft.make_jaxpr" not in quiet and "(agree)" in quiet


def test_per_example_gradients(tmp_path):
    out = run("per_example_gradients.py", "--epochs", "1", cwd=tmp_path)
    assert number_after("vmap(grad) vs a Python loop of grad:     max |difference|", out) < 1e-12
    assert number_after("mean of per-example vs batch gradient:   max |difference|", out) < 1e-12
    small, large = re.search(r"(\d+) equations for a batch of 8, (\d+) for 64", out).groups()
    assert small == large
    assert "clipped at C=1.0" in out
    assert number_after("final test accuracy:", out) > 0.2


def test_newton(tmp_path):
    out = run("newton.py", cwd=tmp_path)
    assert number_after("max |difference|", out) < 1e-10  # ft.hessian vs the closed form
    assert number_after("Newton steps:", out) <= 12
    norms = [float(m) for m in re.findall(r"^\s+\d+\s+[0-9.]+\s+([0-9.e+-]+)", out, re.M)]
    assert norms[-1] < 1e-10 and norms[0] > 0.1
    assert number_after("final test accuracy:", out) > 0.9


def load_graph_example():
    spec = importlib.util.spec_from_file_location("graph_example", EXAMPLES / "graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expected_nodes(closed) -> int:
    jaxpr = closed.jaxpr
    literals = sum(type(x) is Literal for e in jaxpr.eqns for x in e.invars)
    return (
        len(jaxpr.constvars) + len(jaxpr.invars) + len(jaxpr.eqns) + literals + len(jaxpr.outvars)
    )


def test_graph(tmp_path):
    out_dir = tmp_path / "graphs"
    out = run("graph.py", "--out", str(out_dir), cwd=tmp_path)
    module = load_graph_example()
    args = [np.ones((3, 4)), np.ones(3), np.ones((2, 3)), np.ones(2), np.ones(4), np.ones(2)]
    closed = {
        "forward": ft.make_jaxpr(module.loss)(*args),
        "gradient": ft.make_jaxpr(ft.grad(module.loss, argnums=(0, 1, 2, 3)))(*args),
    }
    for name, cj in closed.items():
        assert f"{name}: {len(cj.jaxpr.eqns)} equations" in out
        text = (out_dir / f"{name}.dot").read_text()
        assert text.startswith("digraph jaxpr {") and text.rstrip().endswith("}")
        nodes = re.findall(r"^\s*n\d+ \[label=", text, re.M)
        assert len(nodes) == expected_nodes(cj)
        assert "W1 (" in text and "sigmoid" in text
        if HAVE_DOT:
            proc = subprocess.run(
                ["dot", "-Tjson0", str(out_dir / f"{name}.dot")],
                capture_output=True,
                text=True,
                check=True,
            )
            assert len(json.loads(proc.stdout)["objects"]) == expected_nodes(cj)
            assert (out_dir / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
            assert (out_dir / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    assert "∂L/∂W1" in (out_dir / "gradient.dot").read_text()


def test_graph_without_graphviz(tmp_path):
    out_dir = tmp_path / "graphs"
    out = run("graph.py", "--out", str(out_dir), cwd=tmp_path, path=str(tmp_path))
    assert "apt-get install graphviz" in out
    assert sorted(p.name for p in out_dir.iterdir()) == ["forward.dot", "gradient.dot"]
