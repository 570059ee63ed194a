"""The arithmetic of bench/accuracy.py: filter sets built from the call step's own filters, the
filter verdict, the aligner ratio and the cost projection (no tools run)."""

from __future__ import annotations

from typing import Any

import accuracy
import pytest

from genopipe.steps import call


def test_filter_sets_reuse_the_call_steps_expressions() -> None:
    for caller in call.CALLERS:
        assert accuracy.filter_expressions(2, {}, caller) == call.soft_filters(2, caller)
        assert accuracy.filter_expressions(1, {}, caller) == call.soft_filters(1, caller)
        assert accuracy.filter_expressions(2, accuracy.FILTER_SETS["none"], caller) == []
    loosened = dict(accuracy.filter_expressions(2, {"LowQual": 3}, "bcftools"))
    assert loosened["LowQual"] == "QUAL < 3"
    assert loosened["LowAltFrac"] == dict(call.soft_filters(2, "bcftools"))["LowAltFrac"]
    authors = dict(
        accuracy.filter_expressions(2, accuracy.FILTER_SETS["+ QUAL/AO<10 (freebayes author)"], "freebayes")
    )
    assert authors["LowQual"] == "QUAL < 1 || QUAL / INFO/AO < 10"
    assert accuracy.gap_filters({}) == {"SnpGap": call.SNP_GAP}
    assert accuracy.gap_filters(accuracy.FILTER_SETS["IndelGap 10 (bcftools howto)"]) == {
        "SnpGap": 3,
        "IndelGap": 10,
    }
    assert accuracy.gap_filters(accuracy.FILTER_SETS["none"]) == {}


def test_filter_sets_run_only_for_callers_they_change() -> None:
    assert accuracy.applies("bcftools", 2, "default") and accuracy.applies("bcftools", 2, "none")
    assert not accuracy.applies("bcftools", 2, "no strand/placement bias")
    assert accuracy.applies("freebayes", 2, "no strand/placement bias")
    assert not accuracy.applies("bcftools", 2, "+ QUAL/AO<10 (freebayes author)")


def metrics(tp: int, fp: int, fn: int) -> dict[str, Any]:
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return {"tp": tp, "fp": fp, "fn": fn, "f1": 2 * precision * recall / (precision + recall)}


def figures(snp: tuple[int, int, int], indel: tuple[int, int, int] = (10, 0, 0)) -> dict[str, Any]:
    return {"snp": metrics(*snp), "indel": metrics(*indel)}


def test_real_data_decides_among_candidates_that_keep_ebov_and_the_simulated_sets() -> None:
    callers = {
        "hg002": {
            "bcftools": {"filters": {"default": figures((90, 20, 1)), "none": figures((91, 40, 0))}},
            "freebayes": {"filters": {"default": figures((90, 10, 1)), "none": figures((95, 2, 0))}},
        },
        "ebov": {
            "bcftools": {"filters": {"default": figures((13, 0, 0), (2, 0, 0)), "none": figures((13, 0, 0))}},
            "freebayes": {
                "filters": {"default": figures((13, 0, 0), (2, 0, 0)), "none": figures((13, 3, 0))}
            },
        },
        "sim30": {
            "bcftools": {"filters": {"default": figures((700, 0, 1)), "none": figures((700, 1, 1))}},
            "freebayes": {"filters": {"default": figures((700, 0, 1)), "none": figures((701, 0, 0))}},
        },
    }
    verdict = accuracy.recommend(callers)
    # freebayes/none is best on HG002 but passes 3 false calls on EBOV
    assert verdict["candidates"]["freebayes / none"]["eligible"] is False
    assert "EBOV" in verdict["candidates"]["freebayes / none"]["why_not"][0]
    assert verdict["best"] == "freebayes / default" and verdict["deciding_dataset"] == "hg002"
    # a simulated set that gets worse than the baseline rules it out, even by one SNP in 701
    callers["sim30"]["freebayes"]["filters"]["default"] = figures((700, 0, 2))
    assert accuracy.recommend(callers)["best"] == "bcftools / default"
    # ... class by class: one indel of 146 lost, the SNPs as good
    callers["sim30"]["bcftools"]["filters"]["default"] = figures((700, 0, 0), (146, 0, 0))
    callers["sim30"]["freebayes"]["filters"]["default"] = figures((700, 0, 0), (145, 0, 1))
    verdict = accuracy.recommend(callers)
    assert verdict["best"] == "bcftools / default"
    assert verdict["candidates"]["freebayes / default"]["why_not"] == ["sim30: indel F1 0.9966 < baseline 1"]


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
