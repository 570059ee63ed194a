"""BENCHMARKS.md and its plots, from the recorded results in bench/results/*.json.

Reads `accuracy.json`, `speed.json`, `orchestration.json` (bench/accuracy.py,
bench/orchestration.py), `step_chain.json` (bench/step_chain.py) and `local_run.json`
(bench/local_run.py); a missing file leaves its section saying how to produce it. Writes the
PNGs into `docs/img/` and the page to `BENCHMARKS.md` (or into `--results`/`--out`/`--img` for
the smoke test).

    .venv/bin/python bench/report.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

from genopipe.pipeline import STEP_NAMES
from genopipe.pipeline import STEPS as STEPS_TABLE

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

REPO = Path(__file__).resolve().parents[1]
STEPS = STEP_NAMES  # the table of steps, genopipe/pipeline.py


def recorded(steps: dict[str, Any]) -> list[str]:
    """The table's steps that a recorded run measured, in table order (results recorded before a
    step was added to the table lack it until the benchmark runs again)."""
    return [step for step in STEPS if step in steps]


_PALETTE = ("#8da0cb", "#a6d854", "#66c2a5", "#fc8d62", "#e78ac3", "#b3b3b3", "#ffd92f", "#e5c494")
STEP_COLOURS = {step: _PALETTE[i % len(_PALETTE)] for i, step in enumerate(STEPS)}
ALIGNER_COLOURS = {"minimap2": "#1b9e77", "bwa": "#d95f02"}


def load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / name
    return json.loads(path.read_text()) if path.is_file() else None


def pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


# ---------------------------------------------------------------------------------------------
# plots


def plot_accuracy(accuracy: dict[str, Any], path: Path) -> None:
    """Errors (false negatives stacked on false positives, SNPs + indels) per chain and filter set:
    F1 is within a hair of 1 almost everywhere, the counts show the differences."""
    results = accuracy["results"]
    datasets = [d for d in ("sim30", "sim15", "ebov", "hg002") if d in results]
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.6 * len(datasets), 4.2), squeeze=False)
    for col, dataset in enumerate(datasets):
        ax = axes[0][col]
        aligners = list(results[dataset])
        # the sets every aligner has (call-option sets run on the minimap2 chain only)
        filters = [f for f in results[dataset][aligners[0]]["filters"]
                   if all(f in results[dataset][a]["filters"] for a in aligners)]  # fmt: skip
        width = 0.8 / len(aligners)
        for i, aligner in enumerate(aligners):
            per_filter = [results[dataset][aligner]["filters"][f] for f in filters]
            fps = [m["snp"]["fp"] + m["indel"]["fp"] for m in per_filter]
            fns = [m["snp"]["fn"] + m["indel"]["fn"] for m in per_filter]
            xs = [x + (i - (len(aligners) - 1) / 2) * width for x in range(len(filters))]
            colour = ALIGNER_COLOURS.get(aligner)
            ax.bar(xs, fps, width, color=colour, hatch="//", edgecolor="white", label=f"{aligner} FP")
            bars = ax.bar(xs, fns, width, bottom=fps, color=colour, alpha=0.55, label=f"{aligner} FN")
            f1 = [f"{ratio(m['snp']['f1'])}/{ratio(m['indel']['f1'])}" for m in per_filter]
            ax.bar_label(bars, labels=f1, fontsize=6, rotation=90, padding=2)
        labels = [" ".join(f.split(" ")[:2]) if f.startswith("mpileup") else f.split(" ")[0] for f in filters]
        ax.set_xticks(range(len(filters)), labels, fontsize=7, rotation=45)
        runs = [m for a in aligners for m in results[dataset][a]["filters"].values()]
        if not any(m[k][e] for m in runs for k in ("snp", "indel") for e in ("fp", "fn")):
            ax.text(0.5, 0.5, "no errors with any chain or filter set", transform=ax.transAxes,
                    ha="center", fontsize=9, color="grey")  # fmt: skip
        truth = results[dataset][aligners[0]]["filters"]["none"]
        ax.set_title(
            f"{dataset} ({truth['snp']['truth']} SNPs, {truth['indel']['truth']} indels in truth)", fontsize=9
        )
        ax.set_ylabel("errors: FP (hatched) + FN" if col == 0 else "")
        ax.margins(y=0.35)
        ax.set_ylim(bottom=0, top=max(3.0, ax.get_ylim()[1]))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(
        f"Errors per chain and filter set, caller {accuracy.get('default_caller', 'bcftools')} "
        "(labels: SNP F1 / indel F1); lower is better",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_qual_sweep(accuracy: dict[str, Any], path: Path) -> None:
    results = accuracy["results"]
    datasets = [d for d in ("sim30", "sim15", "hg002") if d in results]
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets), 3.6), squeeze=False)
    for col, dataset in enumerate(datasets):
        ax = axes[0][col]
        sweep = results[dataset]["minimap2"]["qual_sweep"]
        quals = [point["min_qual"] for point in sweep]
        for kind, colour in (("snp", "#7570b3"), ("indel", "#e7298a")):
            for metric, style in (("precision", "-"), ("recall", "--")):
                values = [point[kind][metric] for point in sweep]
                values = [float("nan") if v is None else v for v in values]
                ax.plot(quals, values, style, marker="o", ms=3, color=colour, label=f"{kind} {metric}")
        ax.set_xlabel("LowQual threshold (QUAL <)")
        ax.set_title(
            f"{dataset}, minimap2 + {accuracy.get('default_caller', 'bcftools')}: precision/recall vs QUAL",
            fontsize=10,
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_steps(speed: dict[str, Any], path: Path) -> None:
    chains = [(d, a) for d in ("sim30", "ebov") if d in speed["results"] for a in speed["results"][d]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 0.7 * len(chains) + 2.2))
    labels = [f"{d} / {a}" for d, a in chains]
    longest = max(sum(s["wall_s"] for s in speed["results"][d][a]["steps"].values()) for d, a in chains)
    for y, (dataset, aligner) in enumerate(chains):
        steps = speed["results"][dataset][aligner]["steps"]
        start = 0.0
        for step in recorded(steps):
            wall = steps[step]["wall_s"]
            left.barh(y, wall, left=start, color=STEP_COLOURS[step], edgecolor="white",
                      label=step if y == 0 else None)  # fmt: skip
            if wall > 0.05 * longest:
                left.text(start + wall / 2, y, f"{wall:.0f}", ha="center", va="center", fontsize=7)
            start += wall
        left.text(start, y, f" {start:.0f} s", va="center", fontsize=8)
    left.set_yticks(range(len(chains)), labels, fontsize=8)
    left.invert_yaxis()
    left.set_xlabel(f"wall time, s ({speed['threads']} threads)")
    left.set_title("Time per step", fontsize=10)
    left.legend(fontsize=7, ncols=3, loc="lower right")
    left.margins(x=0.12)
    # peak memory: summed RSS of each step's process tree, sim30
    height = 0.8 / max(1, len(speed["results"].get("sim30", {})))
    for i, (aligner, chain) in enumerate(speed["results"].get("sim30", {}).items()):
        names = recorded(chain["steps"])
        values = [chain["steps"][s]["peak_tree_rss_mib"] for s in names]
        ys = [STEPS.index(s) + (i - 0.5) * height for s in names]
        bars = right.barh(ys, values, height, color=ALIGNER_COLOURS.get(aligner), label=f"sim30 / {aligner}")
        right.bar_label(bars, labels=[f"{v:.0f}" for v in values], fontsize=7, padding=2)
    right.set_yticks(range(len(STEPS)), STEPS, fontsize=8)
    right.invert_yaxis()
    right.set_xlabel("peak memory, MiB (summed RSS of the step's processes)")
    right.set_title("Peak memory per step", fontsize=10)
    right.legend(fontsize=7, loc="lower right")
    right.margins(x=0.15)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_transitions(orchestration: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    styles = {
        "backoff": ("#1b9e77", "backoff 10 s doubling, cap 5120 s"),
        "fixed_60s": ("#d95f02", "fixed 60 s"),
    }
    for name, points in orchestration["curve_transitions_per_step"].items():
        colour, label = styles.get(name, ("black", name))
        xs, ys = [p[0] / 60 for p in points], [p[1] for p in points]
        ax.plot(xs, ys, color=colour, label=label, drawstyle="steps-post")
    for label, figures in orchestration["durations"].items():
        minutes = {"1 min": 1, "1 h": 60, "6 h": 360}[label]
        for name in ("backoff", "fixed_60s"):
            value = figures[name]["per_step"]["state_transitions"]
            ax.plot(minutes, value, "o", color=styles[name][0])
            offset = (-34, 4) if name == "fixed_60s" else (4, -12)
            ax.annotate(str(value), (minutes, value), textcoords="offset points", xytext=offset, fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks([1, 10, 60, 360, 720], ["1 min", "10 min", "1 h", "6 h", "12 h"])
    ax.set_xlabel("Batch job duration (from submission)")
    ax.set_ylabel("state transitions for the step")
    ax.set_title("State transitions per step vs job duration", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# the page


def accuracy_section(accuracy: dict[str, Any] | None, img: str) -> list[str]:
    if accuracy is None:
        return ["_Not run yet: `.venv/bin/python bench/accuracy.py`._", ""]
    lines = [
        f"Run {accuracy['date']} on {accuracy['machine']['cpu']} ({accuracy['threads']} threads). "
        f"Method: {accuracy['method']}",
        "",
        "| data set | what |",
        "|---|---|",
    ]
    lines += [f"| {name} | {d['description']} |" for name, d in accuracy["datasets"].items()]
    lines += [
        "",
        "Filter sets: the call step's own soft filters (`genopipe/steps/call.py`) with some changed; "
        "shown for ploidy 2 (with ploidy 1 `LowAltFrac` is < 0.5). `SnpGap`/`IndelGap` are "
        "`bcftools filter -g`/`-G` windows:",
        "",
    ]
    for caller, sets in accuracy["filter_sets"].items():
        lines.append(f"- {caller}:")
        for name, spec in sets.items():
            shown = "; ".join(f"`{n}` {e}" for n, e in spec["filters"])
            shown += "".join(f"; `{n}` {w} bp" for n, w in spec.get("gap_filters", {}).items())
            lines.append(f"  - **{name}**: {shown.strip('; ') or 'no filter (every call PASSes)'}")
    if accuracy.get("call_option_sets"):
        shipped = " ".join(accuracy["mpileup_options"])
        lines += [
            "",
            f"Call-option sets (bcftools only; the step's mpileup options are `{shipped}`): the chain's BAM "
            "called again (mpileup | call | norm, as the step) with the options below, then the step's "
            "filters; they compete with the filter sets for the default:",
            "",
        ]
        lines += [f"- **{name}**: `{' '.join(argv)}`" for name, argv in accuracy["call_option_sets"].items()]
    header = [
        "| data set | chain | filters | SNP P | SNP R | SNP F1 | indel P | indel R | indel F1 | FP | FN |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    default_caller = accuracy.get("default_caller", "bcftools")
    lines += ["", f"Every chain with the default caller ({default_caller}):", "", *header]
    for dataset, per_aligner in accuracy["results"].items():
        for aligner, result in per_aligner.items():
            lines += [
                row(dataset, f"{aligner} + {default_caller}", name, f)
                for name, f in result["filters"].items()
            ]
    if accuracy.get("callers"):
        lines += [
            "",
            "Both callers on the same minimap2 BAM; `hap F1` is genopipe.truth.evaluate's haplotype-aware "
            "comparison (SNP / indel):",
            "",
            header[0].replace("| FP | FN |", "| FP | FN | hap F1 |"),
            header[1] + "---|",
        ]
        for dataset, per_caller in accuracy["callers"].items():
            for caller, result in per_caller.items():
                for name, f in result["filters"].items():
                    hap = "/".join(ratio(f[k].get("haplotype", {}).get("f1")) for k in ("snp", "indel"))
                    lines.append(row(dataset, f"minimap2 + {caller}", name, f) + f" {hap} |")
        lines += ["", *error_class_table(accuracy["callers"])]
    rec = accuracy["recommendation"]
    lines += [
        "",
        f"![accuracy per chain]({img}/bench-accuracy.png)",
        "",
        f"![QUAL sweep]({img}/bench-qual-sweep.png)",
        "",
        *recommendation_lines(rec),
        "",
        *target_lines(accuracy),
    ]
    return lines


HG002_TARGETS = {"snp": 0.94, "indel": 0.77}  # issue 14: the default chain on the HG002 window


def target_lines(accuracy: dict[str, Any]) -> list[str]:
    hg002 = accuracy.get("callers", {}).get("hg002")
    if not hg002:
        return []
    default = accuracy.get("default_caller", "bcftools")
    parts = []
    for caller, result in hg002.items():
        f1 = {k: result["filters"]["default"][k]["f1"] for k in ("snp", "indel")}
        met = {k: f1[k] is not None and f1[k] >= target for k, target in HG002_TARGETS.items()}
        shipped = " (the default)" if caller == default else ""
        parts.append(
            f"{caller}{shipped} SNP {f1['snp']} ({'met' if met['snp'] else 'NOT met'}) / indel "
            f"{f1['indel']} ({'met' if met['indel'] else 'NOT met'})"
        )
    lines = [
        f"**Targets** (HG002 window, default filters, SNP F1 >= {HG002_TARGETS['snp']} and indel F1 >= "
        f"{HG002_TARGETS['indel']}): " + "; ".join(parts) + ".",
        "",
    ]
    extent = {
        f"{caller} / {name}": f["within_truth_extent"]
        for caller, result in hg002.items()
        for name, f in result["filters"].items()
        if "within_truth_extent" in f
    }
    if extent:
        chrom, start, end = next(iter(extent.values()))["regions"].split()[:3]
        regions = f"{chrom}:{int(start) + 1:,}-{int(end):,}"
        lines += [
            f"Not the targets' measure, to show what stands in their way: the same calls scored only up to "
            f"the truth's last record ({regions}; GIAB's truth has no record in the window's last "
            "2.4 kb, where the callers make ~30 confident calls that count as false):",
            "",
            "| caller / set | SNP P | SNP R | SNP F1 | indel P | indel R | indel F1 |",
            "|---|---|---|---|---|---|---|",
        ]
        for key, f in extent.items():
            s, i = f["snp"], f["indel"]
            lines.append(
                f"| {key} | {pct(s['precision'])} | {pct(s['recall'])} | {s['f1']} | "
                f"{pct(i['precision'])} | {pct(i['recall'])} | {i['f1']} |"
            )
        lines.append("")
    return lines


def row(dataset: str, chain: str, name: str, f: dict[str, Any]) -> str:
    s, i = f["snp"], f["indel"]
    return (
        f"| {dataset} | {chain} | {name} | {pct(s['precision'])} | {pct(s['recall'])} | "
        f"{s['f1'] if s['f1'] is not None else 'n/a'} | {pct(i['precision'])} | "
        f"{pct(i['recall'])} | {i['f1'] if i['f1'] is not None else 'n/a'} | "
        f"{s['fp'] + i['fp']} | {s['fn'] + i['fn']} |"
    )


ERROR_CLASSES = ("homopolymer", "tandem_repeat", "near_another_variant", "low_depth", "no_truth_within_1kb",
                 "beyond_truth_extent", "multiallelic_call", "none_of_these")  # fmt: skip


def error_class_table(callers: dict[str, Any]) -> list[str]:
    lines = [
        "Errors of the default filters by class (an error can be in several; homopolymer: a run of >= 6 "
        "identical bases touching it; tandem repeat: a 2-6 bp unit repeated >= 3 times; near another "
        "variant: a PASS call or truth record within 10 bp; low depth: < 10 reads of MAPQ >= 20; no truth "
        "within 1 kb: a false call far from every truth record; beyond truth extent: a false call before the "
        "truth's first or after its last record on the contig; multiallelic call: a 1/2 call, two ALT "
        "alleles at one position):",
        "",
        "| data set | caller | errors | total | "
        + " | ".join(c.replace("_", " ") for c in ERROR_CLASSES)
        + " |",
        "|---|---|---|---|" + "---|" * len(ERROR_CLASSES),
    ]
    for dataset, per_caller in callers.items():
        for caller, result in per_caller.items():
            classes = result["filters"]["default"].get("error_classes")
            if not classes:
                continue
            for kind in ("fp", "fn"):
                counts = classes[kind]["counts"]
                cells = " | ".join(str(counts.get(c, 0)) for c in ERROR_CLASSES)
                lines.append(
                    f"| {dataset} | {caller} | {kind.upper()} | {classes[kind]['total']} | {cells} |"
                )
    return lines


def recommendation_lines(rec: dict[str, Any]) -> list[str]:
    if "candidates" not in rec:  # an accuracy.json written before the caller comparison
        return [f"**Defaults chosen from the data.** Rule: {rec['rule']}. Verdict: {rec['verdict']}."]
    deciding = rec["deciding_dataset"]
    ranked = sorted(rec["candidates"].items(), key=lambda item: -(item[1].get(deciding) or 0))
    lines = [
        f"**Defaults chosen from the data.** Rule: {rec['rule']}. Chosen: **{rec['best']}** "
        f"(shipped: {rec['shipped']}; {'the same' if rec['matches_shipped_default'] else 'DIFFERENT'}).",
        "",
        f"| caller / filters | mean F1 {deciding} | eligible | why not |",
        "|---|---|---|---|",
    ]
    for key, cand in ranked:
        why = "; ".join(cand["why_not"])
        lines.append(f"| {key} | {cand.get(deciding)} | {'yes' if cand['eligible'] else 'no'} | {why} |")
    return lines


def speed_section(speed: dict[str, Any] | None, img: str) -> list[str]:
    if speed is None:
        return ["_Not run yet: `.venv/bin/python bench/accuracy.py`._", ""]
    lines = [
        f"Same runs as the accuracy table ({speed['date']}, {speed['threads']} threads, "
        "one `genopipe job <step>` process per step on a moto server, cold reference cache). "
        "CPU = user + system of the step and its tools (`wait4`); RSS max = the largest single "
        "process; RSS tree = peak of the summed RSS of the step's processes (sampled every 50 ms).",
        "",
        "| data set | chain | step | wall s | CPU s | RSS max MiB | RSS tree MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset, per_aligner in speed["results"].items():
        for aligner, chain in per_aligner.items():
            for step in recorded(chain["steps"]):
                m = chain["steps"][step]
                lines.append(
                    f"| {dataset} ({chain['read_pairs']:,} pairs) | {aligner} | {step} | {m['wall_s']:.1f} | "
                    f"{m['cpu_s']:.1f} | {m['max_rss_mib']:.0f} | {m['peak_tree_rss_mib']:.0f} |"
                )
    loads = [
        f"{dataset}/{aligner} {', '.join(f'{run[0]:.1f}' for run in chain['load_average_at_start'])}"
        for dataset, per_aligner in speed["results"].items()
        for aligner, chain in per_aligner.items()
        if chain.get("load_average_at_start")
    ]
    if loads:
        lines += [
            "",
            f"1-minute load average when each run started ({speed['machine']['cpus']} CPUs; other "
            f"engineers' work included): {'; '.join(loads)}. Wall times and the vCPU utilisation "
            "below suffer from it; CPU times much less.",
        ]
    ratio = speed.get("aligner_ratio")
    if ratio:
        lines += [
            "",
            f"**minimap2 vs bwa ({ratio['dataset']}, {ratio['read_pairs']:,} pairs), bwa's cost over "
            f"minimap2's:** aligner process CPU **{ratio['aligner_process_cpu_ratio']}x**; whole align step "
            f"CPU {ratio['align_step_cpu_ratio']}x ({ratio['minimap2_pairs_per_core_s']:,.0f} vs "
            f"{ratio['bwa_pairs_per_core_s']:,.0f} read pairs per core-second); align step wall "
            f"{ratio['align_step_wall_ratio']}x; whole chain CPU {ratio['chain_cpu_ratio']}x. ",
            f"Target {ratio['target']}: **{'met' if ratio['within_target'] else 'NOT met'}**.",
        ]
    lines += ["", f"![time and memory per step]({img}/bench-steps.png)", ""]
    return lines


def pipeline_ratio_section(step_chain: dict[str, Any] | None, local_run: dict[str, Any] | None) -> list[str]:
    lines = [
        "| comparison | data | median wall s | plain pipeline s | ratio | target | source |",
        "|---|---|---|---|---|---|---|",
    ]
    if step_chain:
        for name, d in step_chain["datasets"].items():
            lines.append(
                f"| step chain (`genopipe job` per step, moto S3) | {name}, {d['read_pairs']:,} pairs | "
                f"{d['step_chain']['median_wall_s']} | {d['plain']['median_wall_s']} | "
                f"**{d['ratio_chain_over_plain']}** | <= 1.10 | `bench/results/step_chain.json` |"
            )
    else:
        lines.append("| step chain | _not run yet: `bench/step_chain.py`_ | | | | | |")
    if local_run:
        lines.append(
            f"| `genopipe local run` (whole local stack) | {local_run['dataset']['name']}, "
            f"{local_run['dataset']['read_pairs']:,} pairs | {local_run['median_local_run_wall_s']} | "
            f"{local_run['median_plain_wall_s']} | **{local_run['ratio_local_run_over_plain']}** | "
            f"<= {local_run['target_ratio']} | `bench/results/local_run.json` |"
        )
    else:
        lines.append("| `genopipe local run` | _not run yet: `bench/local_run.py`_ | | | | | |")
    return [*lines, ""]


def orchestration_section(orch: dict[str, Any] | None, img: str) -> list[str]:
    if orch is None:
        return ["_Not run yet: `.venv/bin/python bench/orchestration.py`._", ""]
    lines = [
        f"Method: {orch['method']} Scenario: {orch['scenario']}.",
        "",
        "| job duration | polling | transitions / step | Lambda calls / step | transitions / sample | "
        "Lambda calls / sample | history events / sample | noticed late by | USD / sample |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, figures in orch["durations"].items():
        for name in ("backoff", "fixed_60s"):
            f = figures[name]
            lines.append(
                f"| {label} | {name.replace('_', ' ')} | {f['per_step']['state_transitions']} | "
                f"{f['per_step']['lambda_invocations']} | {f['per_sample']['state_transitions']} | "
                f"{f['per_sample']['lambda_invocations']} | {f['per_sample']['history_events']} | "
                f"{f['detection_delay_s']} s | ${f['per_sample']['usd']:.4f} |"
            )
    prices = orch["prices"]
    lines += [
        "",
        f"Prices ({prices['date']}): ${prices['step_functions_standard_usd_per_1000_transitions']} per "
        f"1,000 transitions, ${prices['lambda_usd_per_million_requests']} per million Lambda requests "
        f"+ duration. {prices['basis']}.",
        "",
        *(
            [
                f"Independent of samples: the intake sweep Lambda runs on "
                f"`{orch['per_stack_sweep']['schedule']}`, "
                f"{orch['per_stack_sweep']['lambda_invocations_per_day']} invocations per stack per day "
                f"(${orch['per_stack_sweep']['usd_per_day']} per day).",
                "",
            ]
            if orch.get("per_stack_sweep")
            else []
        ),
        "The backoff's price is latency: a 6-hour job is noticed up to "
        f"{orch['durations']['6 h']['backoff']['detection_delay_s']} s after it ends (the 5120 s cap), "
        "which delays the next step, not the bill (Batch releases the instance when the job ends). "
        "For 1-minute jobs it costs more transitions than fixed polling (more, shorter waits); "
        "for jobs of seconds (validate, a cached reference) it notices the end after 10 s instead of 60 s.",
        "",
        f"![transitions vs job duration]({img}/bench-transitions.png)",
        "",
    ]
    return lines


def cost_section(speed: dict[str, Any] | None) -> list[str]:
    if speed is None:
        return ["_Not run yet: `.venv/bin/python bench/accuracy.py`._", ""]
    p = speed["projection_30x_human"]
    price = p["spot_price"]
    lines = [
        f"Method: {p['method']}. Spot price: **${price['usd_per_vcpu_hour']} per vCPU-hour, "
        f"{price['date']}** ({price['basis']}).",
        "",
        "| step | core-us / read pair (CPU) | vCPU-us / read pair (allocated) | fixed core-s | "
        "core-hours @ 400M (CPU) | USD (CPU) | vCPU-hours @ 400M (allocated) | USD (allocated) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for step, s in p["steps"].items():
        lines.append(
            f"| {step} | {s['core_us_per_read_pair']} | {s['allocated_core_us_per_read_pair']} | "
            f"{s['fixed_core_s']} | {s['projected_cpu_core_hours']} | ${s['projected_usd_cpu_basis']} | "
            f"{s['projected_allocated_vcpu_hours']} | ${s['projected_usd_allocated_basis']} |"
        )
    met = {True: "met", False: "NOT met"}
    lines += [
        f"| **total** | | | | **{p['total_cpu_core_hours']}** | **${p['usd_cpu_basis']}** | "
        f"**{p['total_allocated_vcpu_hours']}** | **${p['usd_allocated_basis']}** |",
        "",
        f"Target <= ${p['target_usd']}: **{met[p['within_target_cpu_basis']]}** on the CPU basis (every "
        f"vCPU busy: the floor), **{met[p['within_target_allocated_basis']]}** on the allocated basis "
        "(2-vCPU jobs billed for their idle share too, utilisation measured on this shared machine: "
        "pessimistic). Both come from a 1 Mb genome. "
        f"If aligning to the 3 Gb genome cost 5x more per read pair, the CPU-basis total would be "
        f"${p['sensitivity_align_x5_usd_cpu_basis']} (an illustration, not a measurement).",
        "",
        most_expensive(speed),
        "",
        call_parallelism_note(speed),
        "",
        "What does not scale linearly:",
        "",
        *[f"- {item}" for item in p["not_linear"]],
        "",
    ]
    return lines


def call_parallelism_note(speed: dict[str, Any]) -> str:
    vcpus = {spec.name: spec.vcpus for spec in STEPS_TABLE}  # = the job definitions (test_step_table)
    call_step = speed["results"]["sim30"]["minimap2"]["steps"]["call"]
    busy = call_step["cpu_s"] / call_step["wall_s"]
    projected = speed["projection_30x_human"]["steps"]["call"]
    price = speed["projection_30x_human"]["spot_price"]["usd_per_vcpu_hour"]
    if "call" not in vcpus or vcpus["call"] <= 1:
        return ""
    billed = projected["projected_cpu_core_hours"] * vcpus["call"] * price
    return (
        f"The call step kept {busy:.2f} cores busy on average here (at most about 1 anywhere: bcftools "
        f"mpileup is single-threaded), but `CallJobDefinition` reserves {vcpus['call']} vCPUs: on that "
        f"definition it is billed at least {vcpus['call']}x its CPU time (${billed:.2f} instead of "
        f"${projected['projected_usd_cpu_basis']:.2f} per genome at ${price}/vCPU-hour), "
        "unless the job shrinks to 1 vCPU or is split by region. Job definition vCPUs: "
        + ", ".join(f"{step} {n}" for step, n in vcpus.items())
        + "."
    )


def most_expensive(speed: dict[str, Any]) -> str:
    steps = speed["projection_30x_human"]["steps"]
    costly = max(steps, key=lambda name: steps[name]["core_us_per_read_pair"])
    chain = speed["results"]["sim30"]["minimap2"]["steps"]
    hungry = max(chain, key=lambda name: chain[name]["peak_tree_rss_mib"])
    tools = ", ".join(f"{t} {c:.1f} s" for t, c in chain[costly]["tool_cpu_s"].items())
    return (
        f"Most expensive step per read pair: **{costly}** ({steps[costly]['core_us_per_read_pair']} "
        f"core-us, vCPU utilisation {steps[costly]['vcpu_utilisation']}; CPU by program at 30x: {tools}). "
        f"Largest peak memory: **{hungry}**, {chain[hungry]['peak_tree_rss_mib']:.0f} MiB at 30x."
    )


def headline(results: Path) -> dict[str, Any]:
    """The figures the README quotes (also written to bench/results/summary.json)."""
    out: dict[str, Any] = {}
    accuracy, speed = load(results, "accuracy.json"), load(results, "speed.json")
    orch = load(results, "orchestration.json")
    chain, local = load(results, "step_chain.json"), load(results, "local_run.json")
    if accuracy:
        default = accuracy["results"].get("sim30", {}).get("minimap2", {}).get("filters", {}).get("default")
        if default:
            out["sim30_minimap2_default"] = {k: default[k]["f1"] for k in ("snp", "indel")}
        ebov = accuracy["results"].get("ebov", {}).get("minimap2", {}).get("filters", {}).get("default")
        if ebov:
            out["ebov_minimap2_default"] = {k: ebov[k]["f1"] for k in ("snp", "indel")}
        out["filter_recommendation"] = accuracy["recommendation"]["best"]
        if "default_caller" in accuracy:
            out["default_caller"] = accuracy["default_caller"]
        hg002 = accuracy.get("callers", {}).get("hg002", {})
        for caller, result in hg002.items():
            out[f"hg002_minimap2_{caller}_default"] = {
                k: result["filters"]["default"][k]["f1"] for k in ("snp", "indel")
            }
    if speed:
        if speed.get("aligner_ratio"):
            ratio = speed["aligner_ratio"]
            out["minimap2_over_bwa_throughput"] = {
                k: ratio[k]
                for k in ("aligner_process_cpu_ratio", "align_step_cpu_ratio", "align_step_wall_ratio")
            }
        projected = speed["projection_30x_human"]
        out["usd_per_30x_genome"] = {
            "cpu_basis": projected["usd_cpu_basis"],
            "allocated_basis": projected["usd_allocated_basis"],
        }
        out["spot_usd_per_vcpu_hour"] = speed["projection_30x_human"]["spot_price"]["usd_per_vcpu_hour"]
    if orch:
        six = orch["durations"]["6 h"]
        out["transitions_per_6h_step"] = {
            k: six[k]["per_step"]["state_transitions"] for k in ("backoff", "fixed_60s")
        }
    if chain:
        out["step_chain_over_plain"] = {n: d["ratio_chain_over_plain"] for n, d in chain["datasets"].items()}
    if local:
        out["local_run_over_plain"] = local["ratio_local_run_over_plain"]
    scale = load(results, "scale.json")
    if scale:
        wgs, fixed = scale["wgs30x"], scale["wgs30x"][scale["with_fixes"]]
        out["wgs30x_projection"] = {
            "as_built": {"wall_hours": wgs["projected_wall_hours"], "usd": wgs["projected_usd"]},
            "with_fixes": {"wall_hours": fixed["wall_hours"], "usd": fixed["usd"]},
        }
    return out


def genome_scale_section(results: Path) -> list[str]:
    """Section 5, written by bench/fleet.py (from bench/scale.py's measurements) as scale.md."""
    fragment = results / "scale.md"
    if not fragment.exists():
        return []
    return ["## 5. Genome scale", "", fragment.read_text().strip(), ""]


def render(results: Path, img_dir: Path, img_ref: str) -> str:
    accuracy, speed = load(results, "accuracy.json"), load(results, "speed.json")
    orch = load(results, "orchestration.json")
    img_dir.mkdir(parents=True, exist_ok=True)
    if accuracy:
        plot_accuracy(accuracy, img_dir / "bench-accuracy.png")
        plot_qual_sweep(accuracy, img_dir / "bench-qual-sweep.png")
    if speed:
        plot_steps(speed, img_dir / "bench-steps.png")
    if orch:
        plot_transitions(orch, img_dir / "bench-transitions.png")
    summary = headline(results)
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`bench/report.py` from `bench/results/*.json`; do not edit by hand). "
        "Each comparison is measured in one run, its contenders alternating, because the machine "
        "is shared and noisy. The JSON files hold the machine, the date, the tool versions and every "
        "raw figure.",
        "",
        "## Headline figures",
        "",
        "```json",
        json.dumps(summary, indent=2),
        "```",
        "",
        "## 1. Accuracy",
        "",
        *accuracy_section(accuracy, img_ref),
        "## 2. Speed and memory",
        "",
        *speed_section(speed, img_ref),
        "### Orchestration overhead against a plain shell pipeline",
        "",
        *pipeline_ratio_section(load(results, "step_chain.json"), load(results, "local_run.json")),
        "## 3. Orchestration cost",
        "",
        *orchestration_section(orch, img_ref),
        "## 4. Projected cost per 30x human genome on Spot",
        "",
        *cost_section(speed),
        *genome_scale_section(results),
        "## Reproduce",
        "",
        "`make bench` (needs `../shared/data` beside the clone) runs `bench/step_chain.py`, "
        "`bench/local_run.py`, `bench/accuracy.py`, `bench/orchestration.py`, `bench/scale.py` and "
        "`bench/fleet.py`, then this report. "
        "`tests/integration/test_bench_smoke.py` (part of `make test`) runs the same code on a tiny "
        "random genome so that it cannot rot.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--img", type=Path, default=REPO / "docs" / "img")
    args = parser.parse_args()
    try:
        img_ref = args.img.resolve().relative_to(args.out.parent.resolve())
    except ValueError:
        img_ref = args.img.resolve()
    page = render(args.results, args.img, str(img_ref))
    args.out.write_text(page)
    (args.results / "summary.json").write_text(json.dumps(headline(args.results), indent=2) + "\n")
    print(f"wrote {args.out}, {args.img}/bench-*.png and {args.results / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
