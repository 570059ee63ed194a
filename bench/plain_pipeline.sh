#!/usr/bin/env bash
# The baseline for bench/step_chain.py: the tools of genopipe's step chain, with the same options,
# as one plain shell pipeline on local files (no S3, no per-step processes, no caching).
# Keep each stage in step with genopipe/steps/<stage>.py.
#
#   plain_pipeline.sh R1 R2 REFERENCE SAMPLE THREADS OUTDIR TIMINGS_TSV
#
# $BENCH_HELPERS holds fastq_pair_check.awk, call_filters.tsv and settings.sh, written by
# step_chain.py from genopipe.steps (so the check, the filters and the settings are the steps'
# own); $MULTIQC is the multiqc program. Appends "<stage>\t<seconds>" lines to TIMINGS_TSV.
set -euo pipefail

r1=$1 r2=$2 reference=$3 sample=$4 threads=$5 out=$6 timings=$7
mkdir -p "$out/ref" "$out/trimmed" "$out/qc" "$out/tmp"
ref="$out/ref/$(basename "${reference%.gz}")"
# shellcheck source=/dev/null
source "$BENCH_HELPERS/settings.sh"
mapfile -t filter_names < <(cut -f1 "$BENCH_HELPERS/call_filters.tsv")
mapfile -t filter_expressions < <(cut -f2 "$BENCH_HELPERS/call_filters.tsv")

validate() {
  pigz -dc "$r1" | awk -v r2="pigz -dc '$r2'" -f "$BENCH_HELPERS/fastq_pair_check.awk" >"$out/verdict.txt"
  grep -q '^ok ' "$out/verdict.txt"
}

prepare_reference() {
  if [[ $(head -c2 "$reference" | od -An -tx1 | tr -d ' ') == 1f8b ]]; then
    pigz -dc "$reference" >"$ref"
  else
    cp "$reference" "$ref"
  fi
  # as the reference step: BGZF copy + .gzi + .fai (what call and report read), .mmi from the plain FASTA
  bgzip -@ "$threads" -i -I "$ref.gz.gzi" -c "$ref" >"$ref.gz"
  samtools faidx "$ref.gz"
  minimap2 -x sr -t "$threads" -d "$ref.mmi" "$ref" 2>"$out/tmp/minimap2-index.log"
}

qc() {
  fastp --in1 "$r1" --in2 "$r2" \
    --out1 "$out/trimmed/${sample}_L1_R1.fastq.gz" --out2 "$out/trimmed/${sample}_L1_R2.fastq.gz" \
    --compression "$TRIMMED_COMPRESSION" --thread "$threads" \
    --json "$out/qc/$sample.fastp.json" --html "$out/qc/$sample.fastp.html" \
    --report_title "$sample fastp report" 2>"$out/tmp/fastp.log"
}

align() {
  minimap2 -ax sr -t "$threads" -R "@RG\tID:$sample.L1\tSM:$sample\tLB:$sample\tPL:ILLUMINA" "$ref.mmi" \
    "$out/trimmed/${sample}_L1_R1.fastq.gz" "$out/trimmed/${sample}_L1_R2.fastq.gz" 2>"$out/tmp/minimap2.log" |
    samtools fixmate -m -u -@ "$threads" - - |
    samtools sort -u -@ "$threads" -m "$SORT_MEMORY_PER_THREAD" -T "$out/tmp/sort" - |
    samtools markdup -@ "$threads" --write-index -T "$out/tmp/markdup" - \
      "$out/$sample.bam##idx##$out/$sample.bam.bai" 2>"$out/tmp/markdup.log"
}

soft_filters() { # BCF on stdin -> VCF, filters $1.. of call_filters.tsv applied (one bcftools each)
  local i=$1
  if ((i == ${#filter_names[@]} - 1)); then
    bcftools filter -m + -s "${filter_names[i]}" -e "${filter_expressions[i]}" -Ov
  else
    bcftools filter -m + -s "${filter_names[i]}" -e "${filter_expressions[i]}" -Ou | soft_filters $((i + 1))
  fi
}

call() {
  bcftools mpileup -f "$ref.gz" -a FORMAT/AD,FORMAT/DP -C "$ADJUST_MAPPING_QUALITY" -q "$MIN_MAPPING_QUALITY" \
    -d "$MAX_DEPTH" -Ou \
    "$out/$sample.bam" 2>"$out/tmp/mpileup.log" |
    bcftools call -m -v --ploidy "$PLOIDY" -Ou |
    bcftools norm -f "$ref.gz" -m -any -Ou 2>"$out/tmp/norm.log" |
    soft_filters 0 |
    bgzip -@ "$threads" -c >"$out/$sample.vcf.gz"
  tabix -p vcf "$out/$sample.vcf.gz"
}

report() {
  samtools stats -@ "$threads" --reference "$ref.gz" "$out/$sample.bam" >"$out/qc/$sample.samtools.stats"
  samtools flagstat -@ "$threads" "$out/$sample.bam" >"$out/qc/$sample.flagstat.txt"
  samtools coverage "$out/$sample.bam" >"$out/tmp/$sample.coverage.tsv"
  bcftools stats -f PASS -F "$ref.gz" "$out/$sample.vcf.gz" >"$out/qc/$sample.bcftools.stats"
  "$MULTIQC" --force --no-data-dir --no-version-check --no-ansi --quiet --no-ai \
    --title "genopipe: $sample" --filename multiqc_report.html --outdir "$out/qc" "$out/qc"
}

for stage in validate prepare_reference qc align call report; do
  started=$EPOCHREALTIME
  "$stage"
  awk -v stage="${stage/prepare_reference/reference}" -v a="$started" -v b="$EPOCHREALTIME" \
    'BEGIN { printf "%s\t%.3f\n", stage, b - a }' >>"$timings"
done
