#!/usr/bin/env bash
# `make check-pins`: every `package=version` pinned in containers/*/Dockerfile must be the
# version this machine's apt offers (a Debian point release moves them; then update the pins).
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
while read -r file pin; do
  package=${pin%%=*} pinned=${pin#*=}
  offered=$(apt-cache policy "$package" 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [ "$offered" != "$pinned" ]; then
    echo "$file: $package pinned to $pinned, apt offers ${offered:-nothing}" >&2
    status=1
  fi
done < <(grep -HoE '^\s+[a-z0-9][a-z0-9.+-]*=[0-9][^ ]*' containers/*/Dockerfile | sed 's/:\s*/ /')
[ $status -eq 0 ] && echo "check-pins: every Dockerfile pin is the version apt offers"
exit $status
