#!/usr/bin/env bash
# Fail early, naming the folder and the numbers, when the disk cannot hold what a run writes.
# Without this a full disk shows up deep in the test suite as a crash inside a framework
# (a torch save aborting the whole process), far from its cause.
#
# usage: check-disk.sh WHAT REPO_GIB TMP_GIB
#   REPO_GIB: GiB the run writes under the repository (virtual environment, artefact cache);
#   TMP_GIB:  GiB it writes under $TMPDIR (pytest's temporary folders, the virtual phones).
# When both folders are on one file system the two needs add up. HARNESS_SKIP_DISK_CHECK=1 skips it.
set -euo pipefail
what=$1 repo_gib=$2 tmp_gib=$3
[[ "${HARNESS_SKIP_DISK_CHECK:-}" == 1 ]] && exit 0
repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=${TMPDIR:-/tmp}
free_gib() { df -Pk "$1" | awk 'NR==2 { printf "%.1f", $4 / 1048576 }'; }
short() { awk -v free="$1" -v need="$2" 'BEGIN { exit !(free < need) }'; }
if [[ $(stat -c %d "$repo") == $(stat -c %d "$tmp") ]]; then
    need=$((repo_gib + tmp_gib)) free=$(free_gib "$repo")
    if short "$free" "$need"; then
        echo "$what needs about $need GiB free on the disk of $repo and $tmp ($repo_gib GiB under the" \
             "repository, $tmp_gib GiB under $tmp); $free GiB is free. Free some space, or point TMPDIR at" \
             "another disk (HARNESS_SKIP_DISK_CHECK=1 runs anyway)." >&2
        exit 1
    fi
else
    for pair in "$repo:$repo_gib" "$tmp:$tmp_gib"; do
        dir=${pair%:*} need=${pair##*:} free=$(free_gib "${pair%:*}")
        if short "$free" "$need"; then
            echo "$what needs about $need GiB free in $dir; $free GiB is free. Free some space" \
                 "(HARNESS_SKIP_DISK_CHECK=1 runs anyway)." >&2
            exit 1
        fi
    done
fi
