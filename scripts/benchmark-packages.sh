#!/usr/bin/env bash
# The Debian packages whose files the benchmark tasks are built from (benchmarks/tasks): fonts for the glyph and
# document tasks, the Adwaita icons, manual pages for a text task. Not needed by tladvisor or its tests; a task
# whose package is missing is skipped with one line naming it. Installs what is missing (as root, with apt-get),
# else prints the command to run.
set -euo pipefail
packages=(fonts-dejavu-core fonts-dejavu-extra fonts-liberation fonts-freefont-ttf adwaita-icon-theme manpages manpages-dev)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "benchmark packages: all installed"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  echo "benchmark packages: installed ${missing[*]}"
else
  echo "benchmark packages missing: ${missing[*]}; run as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
