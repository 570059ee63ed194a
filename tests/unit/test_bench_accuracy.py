"""The arithmetic of bench/accuracy.py: filter sets built from the call step's own filters, the
filter verdict, the aligner ratio and the cost projection (no tools run)."""

from __future__ import annotations

from typing import Any

import accuracy
import pytest

from genopipe.steps import call


def test_filter_sets_reuse_the_call_steps_expressions() -> None:
    assert accuracy.filter_expressions(2, {}) == call.soft_filters(2)
    assert accuracy.filter_expressions(1, {}) == call.soft_filters(1)
    assert accuracy.filter_expressions(2, accuracy.FILTER_SETS["none"]) == []
    loosened = dict(accuracy.filter_expressions(2, {"LowQual": 3}))
    assert loosened["LowQual"] == "QUAL < 3"
    assert loosened["LowAltFrac"] == dict(call.soft_filters(2))["LowAltFrac"]


def metrics(tp: int, fp: int, fn: int) -> dict[str, Any]:
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return {"tp": tp, "fp": fp, "fn": fn, "f1": 2 * precision * recall / (precision + recall)}


def result(per_filter: dict[str, tuple[int, int, int]]) -> dict[str, Any]:
    return {"filters": {n: {"snp": metrics(*c), "indel": metrics(10, 0, 0)} for n, c in per_filter.items()}}


def test_a_better_f1_does_not_change_the_default_when_the_filters_removed_almost_no_false_calls() -> None:
    runs = {"sim": {"minimap2": result({"none": (100, 3, 0), "default": (95, 0, 5), "qual3": (99, 0, 1)})}}
    verdict = accuracy.recommend(runs)
    assert verdict["best"] == "qual3"
    assert verdict["false_calls_removed_by_default_filters"] == 3
    assert verdict["true_calls_lost_to_default_filters"] == 5
    assert verdict["change_default"] is False
    assert "cannot be measured" in verdict["verdict"]


def test_enough_false_calls_make_the_verdict_actionable() -> None:
    runs = {"sim": {"bwa": result({"none": (100, 40, 0), "default": (90, 10, 10), "qual3": (99, 2, 1)})}}
    verdict = accuracy.recommend(runs)
    assert verdict["best"] == "qual3" and verdict["change_default"] is True


def chain(
    read_pairs: int, cpu: dict[str, float], wall: dict[str, float], tools: dict[str, float]
) -> dict[str, Any]:
    steps = {
        step: {"cpu_s": cpu.get(step, 1.0), "wall_s": wall.get(step, 1.0), "tool_cpu_s": tools}
        for step in accuracy.STEPS
    }
    return {"dataset": f"d{read_pairs}", "read_pairs": read_pairs, "steps": steps}


def test_projection_separates_fixed_cost_from_cost_per_read_pair() -> None:
    # align: 1 s fixed + 20 us per pair; wall = CPU / 2 threads (fully busy)
    small = chain(50_000, {"align": 2.0}, {"align": 1.0}, {})
    large = chain(100_000, {"align": 3.0}, {"align": 1.5}, {})
    projected = accuracy.projection(small, large, threads=2)
    align = projected["steps"]["align"]
    assert align["core_us_per_read_pair"] == pytest.approx(20.0)
    assert align["fixed_core_s"] == pytest.approx(1.0)
    assert align["vcpu_utilisation"] == pytest.approx(1.0)
    assert align["projected_cpu_core_hours"] == pytest.approx((1 + 20e-6 * 400e6) / 3600, abs=0.01)
    assert "reference" not in projected["steps"]
    # a step that keeps only one of its two vCPUs busy is billed twice its CPU time
    half_busy = accuracy.projection(small, chain(100_000, {"align": 3.0}, {"align": 3.0}, {}), threads=2)
    assert half_busy["steps"]["align"]["allocated_core_us_per_read_pair"] == pytest.approx(40.0)


def test_aligner_ratio_is_judged_on_the_aligners_own_cpu_time() -> None:
    speed = {
        "sim30": {
            "minimap2": chain(1000, {"align": 2.0}, {"align": 2.0}, {"minimap2": 1.0, "samtools": 1.0}),
            "bwa": chain(1000, {"align": 4.0}, {"align": 3.0}, {"bwa": 3.0, "samtools": 1.0}),
        }
    }
    ratio = accuracy.aligner_ratio(speed, "sim30")
    assert ratio is not None
    assert ratio["aligner_process_cpu_ratio"] == 3.0
    assert ratio["align_step_cpu_ratio"] == 2.0
    assert ratio["within_target"] is True
    assert accuracy.aligner_ratio({"sim30": {"minimap2": speed["sim30"]["minimap2"]}}, "sim30") is None
