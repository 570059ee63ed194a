"""The benchmarks' own code on tiny inputs, so that `make bench` cannot rot between runs.

`bench/accuracy.py --smoke` runs both chains (minimap2, bwa) through the real `genopipe job`
steps on a moto server over a 20 kb random genome; `bench/orchestration.py` walks the real ASL;
`bench/report.py` renders the page and the plots from those results. No speed is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from genopipe.pipeline import STEP_NAMES

REPO = Path(__file__).resolve().parents[2]
STEPS = STEP_NAMES  # the table of steps, genopipe/pipeline.py

pytestmark = pytest.mark.tools


def run(script: str, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{script} failed: {done.stderr[-2000:]}"


def test_benchmarks_run_end_to_end_on_tiny_inputs(tmp_path: Path) -> None:
    results = tmp_path / "results"
    run("accuracy.py", "--smoke", "--threads", "2", "--out-dir", str(results))
    run("orchestration.py", "--out", str(results / "orchestration.json"))
    page = tmp_path / "BENCHMARKS.md"
    run("report.py", "--results", str(results), "--out", str(page), "--img", str(tmp_path / "img"))

    accuracy = json.loads((results / "accuracy.json").read_text())
    for aligner in ("minimap2", "bwa"):
        filters = accuracy["results"]["sim30"][aligner]["filters"]
        assert set(filters) >= {"none", "default"}
        snp = filters["default"]["snp"]
        assert snp["truth"] > 0 and snp["tp"] + snp["fn"] == snp["truth"]
        assert snp["recall"] > 0.5 and snp["precision"] > 0.9  # a tiny 20x sample, but real calls
        # "none" keeps every call, so it can only find more of the truth than the default filters
        assert filters["none"]["snp"]["tp"] >= snp["tp"]
    rec = accuracy["recommendation"]
    candidates = set(accuracy["filter_sets"][rec["best_caller"]])
    candidates |= set(accuracy["call_option_sets"]) if rec["best_caller"] == "bcftools" else set()
    assert rec["best_filters"] in candidates
    # the call-option sets re-call the bcftools chain's BAM: the shipped options, one changed
    before = accuracy["callers"]["sim30"]["bcftools"]["filters"]["mpileup without -C 50 (before)"]
    assert "-C" not in before["call_options"] and before["snp"]["truth"] > 0
    for caller in ("bcftools", "freebayes"):
        default = accuracy["callers"]["sim30"][caller]["filters"]["default"]
        assert default["snp"]["truth"] > 0 and "haplotype" in default["snp"]
        assert set(default["error_classes"]) == {"fp", "fn"}
        assert accuracy["callers"]["sim30"][caller]["call_step"]["wall_s"] > 0

    speed = json.loads((results / "speed.json").read_text())
    for aligner in ("minimap2", "bwa"):
        steps = speed["results"]["sim30"][aligner]["steps"]
        assert list(steps) == list(STEPS)
        for figures in steps.values():
            assert figures["wall_s"] > 0 and figures["max_rss_mib"] > 0 and figures["peak_tree_rss_mib"] > 0
    assert speed["aligner_ratio"]["read_pairs"] == speed["results"]["sim30"]["minimap2"]["read_pairs"]
    projection = speed["projection_30x_human"]
    assert projection["read_pairs"] == 400_000_000
    assert projection["spot_price"]["date"] == "2026-11-24"
    assert "reference" not in projection["steps"]  # built once per reference, not per sample

    text = page.read_text()
    for heading in (
        "## 1. Accuracy",
        "## 2. Speed and memory",
        "## 3. Orchestration cost",
        "## 4. Projected",
    ):
        assert heading in text
    for name in ("accuracy", "qual-sweep", "steps", "transitions"):
        png = tmp_path / "img" / f"bench-{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f"bench-{name}.png" in text
