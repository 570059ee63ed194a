#!/usr/bin/env bash
# Installs the bioinformatics tools (and what building the virtualenvs needs) from Debian
# packages, only those that are missing, so a second run installs nothing.
set -euo pipefail

# command -> Debian package
declare -A packages=(
  [minimap2]=minimap2 [bwa]=bwa [samtools]=samtools [bcftools]=bcftools [tabix]=tabix
  [bgzip]=tabix [fastp]=fastp [dwgsim]=dwgsim [seqkit]=seqkit [pigz]=pigz
  [freebayes]=freebayes [vcfallelicprimitives]=libvcflib-tools
  [node]=nodejs [npm]=npm
)
missing=()
for cmd in "${!packages[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${packages[$cmd]}")
done
# python3 -m venv needs ensurepip, which Debian ships separately
python3 -c 'import ensurepip' 2>/dev/null || missing+=("python3-venv")

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "installing Debian packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
