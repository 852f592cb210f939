#!/bin/sh
# make bench-winograd: the GAN training iterations of tools/bench_gan.c built
# twice, with MMGAN_WINOGRAD=0 (every convolution product direct) and =1
# (the 4x4 stride-2 layers in F(4x4, 2x2)), the two builds alternating
# round by round so that both see the same load.  Which default suits a
# kernel set is this measurement (on AVX-512 the default is 0 until it is
# made there).
# Environment: THREADS ("1 2"), CASES ("magan hinge_linf_gp hinge"),
# ITERS (30 a round), ROUNDS (5), WARMUP (5), CC (cc), BENCH_FLAGS (as the
# Makefile's).  Prints, per case and thread count, each build's median of
# its rounds' medians (ms per iteration), their ratio, and each build's
# peak resident memory.
set -u
cd "$(dirname "$0")/.." || exit 2
CC=${CC:-cc}
FLAGS=${BENCH_FLAGS:-"-std=c99 -O2 -march=native -fopenmp -Wall -Wextra"}
THREADS=${THREADS:-"1 2"}
CASES=${CASES:-"magan hinge_linf_gp hinge"}
ITERS=${ITERS:-30}
ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-5}
for v in ITERS ROUNDS WARMUP; do
    eval "x=\$$v"
    case $x in ''|*[!0-9]*) echo "bench_winograd.sh: $v=$x is not a count" >&2; exit 2 ;; esac
done
[ "$ITERS" -gt 0 ] && [ "$ROUNDS" -gt 0 ] || { echo "bench_winograd.sh: ITERS and ROUNDS must be positive" >&2; exit 2; }
mkdir -p build
for w in 0 1; do
    # shellcheck disable=SC2086
    $CC $FLAGS -DMMGAN_WINOGRAD=$w tools/bench_gan.c -o build/bench_gan_w$w -lm || exit 1
done
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
echo "CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -1)"
printf '%-15s %7s %12s %12s %8s %10s %10s\n' case threads direct_ms winograd_ms speedup direct_MiB wino_MiB
status=0
for t in $THREADS; do
    for c in $CASES; do
        r=1
        while [ "$r" -le "$ROUNDS" ]; do
            for w in 0 1; do
                if OMP_NUM_THREADS="$t" build/bench_gan_w$w bench --case "$c" --threads "$t" --iters "$ITERS" \
                       --warmup "$WARMUP" >"$tmp/out"; then
                    # "mmgan CASE THREADS median min max rss"
                    awk '$1 == "mmgan" && NF == 7 { print $4, $7 }' "$tmp/out" >>"$tmp/$c.$t.$w"
                else
                    echo "bench_winograd.sh: $c on $t thread(s), MMGAN_WINOGRAD=$w failed" >&2; status=1
                fi
            done
            r=$((r + 1))
        done
        # median of the rounds' medians; the largest peak
        set -- $(for w in 0 1; do touch "$tmp/$c.$t.$w"; sort -n "$tmp/$c.$t.$w" | awk '{ m[NR] = $1; if ($2 > r) r = $2 }
            END { if (NR == 0) { print "nan", "nan"; exit }
                  print (NR % 2 ? m[(NR + 1) / 2] : (m[NR / 2] + m[NR / 2 + 1]) / 2), r }'; done)
        printf '%-15s %7s %12s %12s %8s %10s %10s\n' "$c" "$t" "$1" "$3" \
            "$(awk -v a="$1" -v b="$3" 'BEGIN { if (a != "nan" && b != "nan" && b > 0) printf "%.2fx", a / b; else print "-" }')" "$2" "$4"
    done
done
echo "(speedup: the direct products' time over F(4x4, 2x2)'s; median of $ROUNDS alternating rounds of $ITERS iterations)"
exit $status
