#!/bin/sh
# make bench, the GAN part: the training iterations of tools/bench_gan.c
# (mmgan) and tools/bench_gan_torch.py (PyTorch) side by side, case by case
# in one run, then a check that both give the same losses from the same
# weights and inputs.  Without Debian's python3-torch only mmgan is timed.
#
#   sh tools/bench_gan.sh          timing table, then the loss check
#   sh tools/bench_gan.sh check    the loss check alone (make crosscheck)
#   sh tools/bench_gan.sh ab       two builds of mmgan's side instead, BIN
#                                  against BIN_B (make bench-winograd: with
#                                  and without F(4x4, 2x2)), named LABEL_A
#                                  and LABEL_B; the table only
# Environment: THREADS ("1 2"), CASES ("magan hinge_linf_gp hinge"),
# ITERS (30 a round), ROUNDS (5), WARMUP (5), FITERS (pairs of iterations
# for the penalty factor, 2 ITERS), CSV (build/bench_gan.csv),
# BIN (build/bench_gan), BENCH_OPENBLAS_CORETYPE (measured by
# tools/openblas_core.sh unless set).
# Prints a table (ms per iteration, medians; peak resident memory), each
# side's penalty factor (hinge_linf_gp over hinge, measured in one process
# with the two cases alternating) per thread count, and
# `N passed, N failed` for the loss check; exits 1 if a check fails.
set -u
BIN=${BIN:-build/bench_gan}
THREADS=${THREADS:-"1 2"}
CASES=${CASES:-"magan hinge_linf_gp hinge"}
ITERS=${ITERS:-30}
ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-5}
CSV=${CSV:-build/bench_gan.csv}
PY=/usr/bin/python3
TORCH=tools/bench_gan_torch.py
MODE=${1:-bench}
case $MODE in bench|check|ab) ;; *) echo "usage: sh tools/bench_gan.sh [check|ab]" >&2; exit 2 ;; esac
for v in ROUNDS ITERS FITERS; do
    [ $v = FITERS ] && FITERS=${FITERS:-$((2 * ITERS))}
    eval "x=\$$v"
    case $x in ''|*[!0-9]*|0) echo "bench_gan.sh: $v=$x is not a positive count" >&2; exit 2 ;; esac
done

if [ ! -x "$BIN" ]; then
    echo "bench_gan.sh: $BIN is missing; run make bench" >&2
    exit 2
fi
if [ "$MODE" = ab ]; then
    torch=no
    if [ ! -x "${BIN_B:-}" ]; then echo "bench_gan.sh: ab needs BIN_B, a second build of tools/bench_gan.c" >&2; exit 2; fi
    A=${LABEL_A:-a} B=${LABEL_B:-b}
elif [ -x "$PY" ] && "$PY" -c "import torch" 2>/dev/null; then
    torch=yes
else
    torch=no
    echo "bench_gan.sh: PyTorch is not importable from $PY (Debian: apt-get install python3-torch); timing mmgan only"
    if [ "$MODE" = check ]; then echo "total: 0 passed, 1 failed"; exit 1; fi
fi
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT

if [ "$MODE" != check ]; then
[ "$MODE" = bench ] && rm -f "$CSV"

# OpenMP threads as asked; OpenBLAS (PyTorch's BLAS) on its best kernels:
# the environment's OPENBLAS_CORETYPE=Haswell halves its speed, and on a CPU
# newer than OpenBLAS 0.3.21 its own detection picks slow generic kernels
# (tools/openblas_core.sh measures which core type is fastest).
# make bench passes its choice (empty: OpenBLAS's own detection) in BENCH_OPENBLAS_CORETYPE.
if [ $torch = no ]; then CORE=
elif [ "${BENCH_OPENBLAS_CORETYPE+set}" = set ]; then CORE=$BENCH_OPENBLAS_CORETYPE
else CORE=$(sh tools/openblas_core.sh "${BENCH_BIN:-build/bench}"); fi
[ $torch = yes ] && echo "PyTorch's OpenBLAS: OPENBLAS_CORETYPE ${CORE:-unset (its own detection)}"
# Each case runs as ROUNDS alternating pairs (mmgan, then PyTorch), each the
# median of ITERS iterations: on a shared machine the load comes in bursts of
# seconds, and a pair run back to back sees about the same load.  A round
# runs every case once, so that a case's rounds are spread over the run.
# Times are the medians of the rounds' medians, the speedup the median of
# the rounds' ratios; the CSV has a row per round and side.

# The median of a[1..n] (sorts a).
AWK_MED='function med(a, n,   i, j, x) { for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
                                     return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }'
per=$ITERS
if [ "$MODE" = ab ]; then
    csv=""   # both sides are mmgan's: their rows could not be told apart
    printf '%-14s %7s %10s %10s %7s %10s %10s %7s\n' case threads "${A}_ms" "${B}_ms" speedup "${A}_MiB" "${B}_MiB" mem_x
else
    csv="--csv $CSV"
    printf '%-14s %7s %10s %10s %7s %10s %10s %7s\n' case threads mmgan_ms torch_ms speedup mmgan_MiB torch_MiB mem_x
fi
for t in $THREADS; do
    for c in $CASES; do : > "$tmp/rounds.$c"; done
    r=0
    while [ $r -lt "$ROUNDS" ]; do
        r=$((r + 1))
        # the table comes after all rounds of a thread count: show the way there
        echo "bench_gan.sh: $t thread(s), round $r of $ROUNDS ..." >&2
        for c in $CASES; do
            m=$(env -u OPENBLAS_CORETYPE OMP_NUM_THREADS="$t" "$BIN" bench --case "$c" --threads "$t" \
                  --iters "$per" --warmup "$WARMUP" $csv | tail -n 1) || { echo "bench_gan.sh: mmgan $c failed" >&2; exit 1; }
            set -- $m
            mms=$4 mrss=$7 pms=- prss=-
            if [ "$MODE" = ab ]; then
                p=$(env -u OPENBLAS_CORETYPE OMP_NUM_THREADS="$t" "$BIN_B" bench --case "$c" --threads "$t" \
                      --iters "$per" --warmup "$WARMUP" | tail -n 1) || { echo "bench_gan.sh: $B $c failed" >&2; exit 1; }
                set -- $p
                pms=$4 prss=$7
            elif [ $torch = yes ]; then
                p=$(env BENCH_OPENBLAS_CORETYPE="$CORE" \
                      "$PY" "$TORCH" bench --case "$c" --threads "$t" --iters "$per" --warmup "$WARMUP" \
                      --csv "$CSV" | tail -n 1) || { echo "bench_gan.sh: torch $c failed" >&2; exit 1; }
                set -- $p
                pms=$4 prss=$7
            fi
            echo "$mms $pms $mrss $prss" >> "$tmp/rounds.$c"
        done
    done
    for c in $CASES; do
        awk -v c="$c" -v t="$t" -v torch=$([ "$MODE" = ab ] && echo yes || echo $torch) "$AWK_MED"'
            { n++; m[n] = $1; p[n] = $2; r[n] = $2 / $1; if ($3 > mr) mr = $3; if ($4 > pr) pr = $4 }
            END { if (torch != "yes") { printf "%-14s %7d %10.2f %10s %7s %10.1f %10s %7s\n", c, t, med(m, n), "-", "-", mr, "-", "-"; exit }
                  printf "%-14s %7d %10.2f %10.2f %6.2fx %10.1f %10.1f %6.1fx\n", c, t, med(m, n), med(p, n), med(r, n), mr, pr, pr / mr }' \
            "$tmp/rounds.$c"
    done
    # The penalty's cost, hinge_linf_gp over hinge: each side in one process
    # with the two cases' iterations alternating (their `factor` command),
    # where the ratio of separate runs' medians swings with their loads.
    [ "$MODE" = ab ] && continue
    case " $CASES " in *" hinge_linf_gp "*) case " $CASES " in *" hinge "*)
        echo "bench_gan.sh: $t thread(s), penalty factor, $FITERS pairs a side ..." >&2
        f=$(env -u OPENBLAS_CORETYPE OMP_NUM_THREADS="$t" "$BIN" factor --threads "$t" --iters "$FITERS" \
              --warmup "$WARMUP" | tail -n 1) || { echo "bench_gan.sh: mmgan factor failed" >&2; exit 1; }
        set -- $f
        line=$(printf "penalty factor (hinge_linf_gp / hinge), %d thread%s: mmgan %.3f (quartiles %.3f-%.3f; %.2f / %.2f ms)" \
                 "$t" "$([ "$t" = 1 ] || echo s)" "$6" "$7" "$8" "$4" "$5")
        if [ $torch = yes ]; then
            p=$(env BENCH_OPENBLAS_CORETYPE="$CORE" "$PY" "$TORCH" factor --threads "$t" --iters "$FITERS" \
                  --warmup "$WARMUP" | tail -n 1) || { echo "bench_gan.sh: torch factor failed" >&2; exit 1; }
            set -- $p
            line=$(printf "%s, PyTorch %.3f (quartiles %.3f-%.3f; %.2f / %.2f ms)" "$line" "$6" "$7" "$8" "$4" "$5")
        fi
        echo "$line"
    ;; esac ;; esac
done
if [ "$MODE" = ab ]; then
    echo "(table: median of $ROUNDS alternating rounds of $per iterations each; speedup and mem_x: $B's over $A's)"
    exit 0
fi
echo "(table: median of $ROUNDS alternating rounds of $per iterations each; speedup and mem_x: PyTorch's over mmgan's; CSV in $CSV)"
echo "(penalty factor: median of $FITERS alternating pairs of iterations in one process per side; not in the CSV)"
fi

[ $torch = yes ] || exit 0
# The first iterations' losses from identical weights and inputs: mmgan
# writes its initial weights and each iteration's x, z and u, PyTorch
# replays them.  Agreement within 1e-3 relative (1e-6 absolute near 0).
pass=0 fail=0
for c in $CASES; do
    if ! "$BIN" check --case "$c" --out "$tmp/$c.safetensors" > "$tmp/$c.mmgan" ||
       ! "$PY" "$TORCH" check --case "$c" --init "$tmp/$c.safetensors" > "$tmp/$c.torch"; then
        echo "FAIL loss check $c: a side failed to run"
        fail=$((fail + 1))
        continue
    fi
    if awk -v c="$c" 'NR == FNR { for (i = 3; i <= 5; i++) want[$2, i] = $i; n++; next }
        { if (!(($2, 3) in want)) { printf "FAIL loss check %s: iteration %s only in PyTorch\n", c, $2; bad = 1; next }
          for (i = 3; i <= 5; i++) {
              a = $i; b = want[$2, i]; d = a - b; if (d < 0) d = -d
              s = (a < 0 ? -a : a) > (b < 0 ? -b : b) ? (a < 0 ? -a : a) : (b < 0 ? -b : b)
              if (d > 1e-3 * s + 1e-6) { printf "FAIL loss check %s iter %s: %s mmgan %s, PyTorch %s\n", c, $2,
                                          i == 3 ? "d_loss" : i == 4 ? "g_loss" : "penalty", b, a; bad = 1 } }
          m++ }
        END { if (m != n || n == 0) { printf "FAIL loss check %s: %d iterations in mmgan, %d in PyTorch\n", c, n, m; bad = 1 }
              if (!bad) printf "ok loss check %s: %d iterations, d_loss, g_loss, penalty within 1e-3\n", c, n
              exit bad }' "$tmp/$c.mmgan" "$tmp/$c.torch"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
    fi
done
if [ "$MODE" = check ]; then echo "total: $pass passed, $fail failed"; else echo "$pass passed, $fail failed"; fi
[ $fail -eq 0 ]
