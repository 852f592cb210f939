#!/bin/sh
# Prints the OPENBLAS_CORETYPE under which OpenBLAS runs fastest on this
# machine, or nothing when its own CPU detection is best (or OpenBLAS is
# absent).  The benchmarks compare against OpenBLAS at its best: 0.3.21
# takes CPU models newer than it (Intel's Emerald Rapids here) for an old
# Prescott and runs 5x slower, which would make an unfair comparison.
# Usage: sh tools/openblas_core.sh [build/bench]
BIN=${1:-build/bench}
[ -x "$BIN" ] || exit 0
best= bestg=0
for ct in auto SkylakeX Cooperlake Haswell Zen; do
    # OpenBLAS's AVX-512 kernels end in SIGILL on a CPU without AVX-512
    # (0.3.21 does not refuse SkylakeX there), so they are not tried.
    case $ct in SkylakeX|Cooperlake) grep -qw avx512f /proc/cpuinfo 2>/dev/null || continue ;; esac
    if [ $ct = auto ]; then
        r=$(env -u OPENBLAS_CORETYPE "$BIN" --openblas-probe 2>/dev/null) || exit 0
    else
        r=$(OPENBLAS_CORETYPE=$ct "$BIN" --openblas-probe 2>/dev/null) || continue
    fi
    g=${r##* }
    # Another core type the CPU cannot run is refused by OpenBLAS, which
    # falls back to its detection: the fastest measured wins either way.
    if awk -v g="$g" -v b="$bestg" 'BEGIN { exit !(g > 1.05 * b) }'; then
        bestg=$g
        [ $ct = auto ] && best= || best=$ct
    fi
done
echo "$best"
