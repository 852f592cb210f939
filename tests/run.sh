#!/bin/sh
# The test runner behind `make test`, `make test-cross` and `make test-avx512`.
#   tests/run.sh unit    build checks, then every test suite for each kernel set
#                        this CPU can run (native, avx2, sse2, scalar on x86-64)
#   tests/run.sh avx512  the kernel suites on the AVX-512 kernels through SIMDe's
#                        portable intrinsics, where the CPU has no AVX-512
#   tests/run.sh cross   every suite cross-compiled for aarch64, armv7 (NEON),
#                        riscv64 and s390x (big-endian), run under qemu-user
# (unit also runs the MNIST evaluation kit, tests/test_eval.c and tests/tools.sh,
# and the suites of the API's input and of the convolutions under ASan and UBSan.)
# Each suite prints "name [isa]: N passed, N failed"; the last line sums them.
set -u
cd "$(dirname "$0")/.." || exit 2
CC=${CC:-cc}
OUT=${BUILD:-build}
WFLAGS="-std=c99 -Wall -Wextra -Wpedantic -Werror"
SUITES="test_core test_gemm test_vec test_conv test_graph test_loss test_opt test_io test_ckpt test_alloc"
passed=0; failed=0; skipped=0

note() { printf '%s\n' "$*"; }
# Adds the counts of every "N passed, N failed" line in file $1.
count() {
    p=$(sed -n 's/.*: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed.*/\1/p' "$1" | awk '{s+=$1} END {print s+0}')
    f=$(sed -n 's/.*: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed.*/\2/p' "$1" | awk '{s+=$1} END {print s+0}')
    passed=$((passed + p)); failed=$((failed + f))
}
# One result of the build checks.
result() { # name status(0 ok)
    if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); note "FAIL build check: $1"; fi
}
has() { command -v "$1" >/dev/null 2>&1; }

# Compiles at once: each suite compiles the whole header (4-5 s at -O2), and
# the builds were most of `make test`'s time.  Natively the suites still run
# one at a time (their thread tests want the cores); under qemu, where
# timing means nothing, test-cross runs JOBS of them at once.
# At most 4 at a time (each gcc takes about 160 MB; a container may see
# more cores than it may use).
JOBS=${JOBS:-$( (nproc || getconf _NPROCESSORS_ONLN) 2>/dev/null || echo 1)}
[ "$JOBS" -gt 4 ] 2>/dev/null && JOBS=4
started_jobs=0
bg_pending=""
# bg TAG LABEL CMD...: runs CMD in the background, JOBS at a time, its output
# in TAG.log and its exit status in TAG.rc; LABEL is what bg_results reports.
bg() {
    bg_tag=$1; bg_label=$2; shift 2
    rm -f "$bg_tag.rc"
    ( "$@" >"$bg_tag.log" 2>&1; echo $? >"$bg_tag.rc" ) &
    bg_pending="$bg_pending$bg_tag|$bg_label
"
    started_jobs=$((started_jobs + 1))
    if [ "$started_jobs" -ge "$JOBS" ]; then wait; started_jobs=0; fi
}
# bg_wait: waits for every job started; bg_status TAG: its exit status.
bg_wait() { wait; started_jobs=0; bg_pending=""; }
bg_status() { cat "$1.rc" 2>/dev/null || echo 1; }
# bg_results: waits, then one build-check result per job in the order they
# started (a failure shows its output).
bg_results() {
    wait; started_jobs=0
    while IFS='|' read -r bg_tag bg_label; do
        [ -n "$bg_tag" ] || continue
        st=$(bg_status "$bg_tag")
        [ "$st" -ne 0 ] && cat "$bg_tag.log"; result "$bg_label" "$st"
    done <<EOF
$bg_pending
EOF
    bg_pending=""
}

# build_suites LABEL COMPILER FLAGS...: builds every suite into $OUT/LABEL.
build_suites() {
    label=$1; cc=$2; shift 2
    dir="$OUT/$label"; mkdir -p "$dir"
    for s in $SUITES; do bg "$dir/$s.build" "$s" $cc $WFLAGS -O2 "$@" "tests/$s.c" -o "$dir/$s" -lm; done
    bg_wait
}
# report_suite LABEL SUITE STATUS: prints and counts a suite's run, whose
# output is in $OUT/LABEL/SUITE.log and exit status STATUS (a build failure
# counts as one failure).
report_suite() {
    dir="$OUT/$1"; log="$dir/$2.log"
    if [ "$(bg_status "$dir/$2.build")" != 0 ]; then
        note "FAIL $1: $2 does not build:"; sed -n 1,20p "$dir/$2.build.log"
        failed=$((failed + 1)); return
    fi
    # A suite exits 1 when a check failed (counted from its summary); any
    # other way to end non-zero is a failure of its own: a crash, a
    # sanitizer's report (a leak report ends the process before its buffered
    # summary is written: shown as a crash), or a status after all passed.
    if [ "$3" != 0 ]; then
        if ! grep -q "passed, .* failed" "$log"; then
            note "FAIL $1: $2 crashed:"; tail -5 "$log"; failed=$((failed + 1))
        elif grep -q "passed, 0 failed" "$log"; then
            note "FAIL $1: $2 exited with status $3 after its checks passed:"
            grep -m 5 "Sanitizer\|runtime error" "$log" || tail -5 "$log"
            failed=$((failed + 1))
        fi
    fi
    grep -v "^  " "$log" | sed "s/^/  $1: /"
    count "$log"
}
# run_suites LABEL RUNNER COMPILER FLAGS...: build the suites and run them,
# one at a time (their thread tests want the cores).
run_suites() {
    label=$1; runner=$2; cc=$3; shift 3
    build_suites "$label" "$cc" "$@"
    for s in $SUITES; do
        st=0
        if [ "$(bg_status "$OUT/$label/$s.build")" = 0 ]; then
            $runner "$OUT/$label/$s" >"$OUT/$label/$s.log" 2>&1; st=$?
        fi
        report_suite "$label" "$s" $st
    done
}

build_checks() {
    tu="$OUT/checks"; mkdir -p "$tu"
    printf '#define MMGAN_IMPLEMENTATION\n#include "../../mmgan.h"\nint main(void){ mmgan_ctx *c = mmgan_ctx_new(0); mmgan_ctx_free(c); return 0; }\n' >"$tu/impl.c"
    printf '#include "../../mmgan.h"\nint use_header(void){ return mmgan_ctx_threads(0); }\n' >"$tu/user.c"
    printf '#define MMGAN_MALLOC(u,s) malloc(s)\n#define MMGAN_IMPLEMENTATION\n#include "../../mmgan.h"\n' >"$tu/partial.c"
    for cc in gcc clang; do
        has $cc || { skipped=$((skipped + 1)); note "skip: $cc not installed"; continue; }
        i=0
        for defs in "" "-DMMGAN_STATIC" "-DMMGAN_NO_SIMD" "-march=native" "-march=native -fopenmp -DMMGAN_STATIC" "-O3 -march=native" "-DMMGAN_NO_STDIO" \
                    "-DMMGAN_WINOGRAD=0" "-march=native -DMMGAN_WINOGRAD=0"; do
            i=$((i + 1))
            bg "$tu/$cc$i" "$cc -std=c99 -Werror $defs" $cc $WFLAGS $defs -c "$tu/impl.c" -o "$tu/$cc$i.o"
        done
        bg_results
        # Header in one file, implementation in another: links, no duplicates.
        $cc $WFLAGS -c "$tu/user.c" -o "$tu/user.o" && $cc $WFLAGS "$tu/impl.c" "$tu/user.o" -o "$tu/two" -lm
        result "$cc two translation units link" $?
        # A partial allocator override must stop the build with its #error.
        if $cc -std=c99 -c "$tu/partial.c" -o "$tu/partial.o" >"$tu/log" 2>&1; then st=1
        else grep -q "MMGAN_MALLOC, MMGAN_REALLOC and MMGAN_FREE" "$tu/log"; st=$?; fi
        result "$cc partial allocator override is an #error" $st
        if $cc -std=c99 -DMMGAN_WINOGRAD=2 -c "$tu/impl.c" -o "$tu/wino.o" >"$tu/log" 2>&1; then st=1
        else grep -q "MMGAN_WINOGRAD must be defined as 0 or 1" "$tu/log"; st=$?; fi
        result "$cc MMGAN_WINOGRAD other than 0 or 1 is an #error" $st
    done
    # The examples build warning-free as they are.
    for ex in examples/*.c; do
        [ -f "$ex" ] || continue
        b=$(basename "$ex" .c)
        bg "$tu/$b" "$ex builds" $CC $WFLAGS -O2 "$ex" -o "$tu/$b" -lm
    done
    bg_results
    for cxx in g++ clang++; do
        has $cxx || { skipped=$((skipped + 1)); note "skip: $cxx not installed"; continue; }
        i=0
        for defs in "" "-march=native" "-O2 -march=native -fopenmp" "-DMMGAN_STATIC"; do
            i=$((i + 1))
            bg "$tu/$cxx$i" "$cxx -std=c++11 $defs" $cxx -std=c++11 -Wall -Wextra -Wpedantic -Werror $defs -x c++ -c "$tu/impl.c" -o "$tu/$cxx$i.o"
        done
        bg_results
    done
}

case "${1:-unit}" in
unit)
    build_checks
    native_omp="-fopenmp"
    echo 'int main(void){return 0;}' >"$OUT/checks/omp.c"
    $CC -fopenmp "$OUT/checks/omp.c" -o "$OUT/checks/omp" >/dev/null 2>&1 || native_omp=""
    run_suites native env "$CC" -march=native $native_omp
    # OpenMP granting fewer threads than asked (3 of them, at most 2 here):
    # the convolutions' threads must not count on the number they asked for.
    if [ -n "$native_omp" ] && [ -x "$OUT/native/test_conv" ]; then
        log="$OUT/native/test_conv_limit.log"
        if OMP_THREAD_LIMIT=2 "$OUT/native/test_conv" >"$log" 2>&1; then :; else
            grep -q "passed, .* failed" "$log" ||
                { note "FAIL native, OMP_THREAD_LIMIT=2: test_conv crashed:"; tail -5 "$log"; failed=$((failed + 1)); }
        fi
        grep -v "^  " "$log" | sed "s/^/  native, OMP_THREAD_LIMIT=2: /"
        count "$log"
    fi
    # F(4x4, 2x2) the other way from the native build's default
    # (MMGAN_WINOGRAD): off where it is on, on where it is off (AVX-512).
    if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then flip=1; else flip=0; fi
    ALL_SUITES=$SUITES; SUITES=test_conv
    run_suites native-winograd$flip env "$CC" -march=native $native_omp -DMMGAN_WINOGRAD=$flip
    SUITES=$ALL_SUITES
    # The suites that take the API's input, and the convolutions, again under
    # AddressSanitizer and UndefinedBehaviorSanitizer where the compiler has
    # them: any report (a leak, a signed overflow) fails the suite, even
    # after all its checks passed.
    echo 'int main(void){return 0;}' >"$OUT/checks/san.c"
    if $CC -fsanitize=address,undefined "$OUT/checks/san.c" -o "$OUT/checks/san" >/dev/null 2>&1 && "$OUT/checks/san"; then
        ALL_SUITES=$SUITES; SUITES="test_core test_graph test_conv test_loss test_opt test_io test_ckpt"
        # -O1: the builds take 12 s a suite instead of 20 at -O2, the runs as long
        run_suites sanitizers env "$CC" -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
            -march=native $native_omp
        SUITES=$ALL_SUITES
    else
        skipped=$((skipped + 1)); note "skip: $CC has no AddressSanitizer and UndefinedBehaviorSanitizer"
    fi
    # SIGKILL during checkpoint saves: the previous file must still load.
    if [ -x "$OUT/native/test_ckpt" ]; then
        sh tests/crash_ckpt.sh "$OUT/native/test_ckpt" >"$OUT/native/crash.log" 2>&1
        sed "s/^/  native: /" "$OUT/native/crash.log" | tail -1
        count "$OUT/native/crash.log"
    fi
    # The MNIST evaluation kit, natively only: it classifies 10,000 digits.
    tdir="$OUT/tools"; mkdir -p "$tdir"
    ALL_SUITES=$SUITES; SUITES=test_eval
    run_suites native env "$CC" -march=native $native_omp
    SUITES=$ALL_SUITES
    tools_ok=1
    TOOLS="tools/mnist_eval.c tools/mnist_classifier.c tools/energy_curves.c examples/magan_mnist.c examples/gan_mnist.c examples/sample.c"
    for src in $TOOLS; do
        b=$(basename "$src" .c)
        bg "$tdir/$b.build" "$src" $CC $WFLAGS -O2 -march=native $native_omp "$src" -o "$tdir/$b" -lm
    done
    bg_wait
    for src in $TOOLS; do
        b=$(basename "$src" .c)
        if [ "$(bg_status "$tdir/$b.build")" != 0 ]; then
            note "FAIL tools: $src does not build:"; sed -n 1,20p "$tdir/$b.build.log"; failed=$((failed + 1)); tools_ok=0
        fi
    done
    if [ $tools_ok -eq 1 ]; then
        sh tests/tools.sh "$tdir" >"$tdir/tools.log" 2>&1
        sed "s/^/  native: /" "$tdir/tools.log" | grep -v "^  native: FAIL" | tail -1
        grep "FAIL" "$tdir/tools.log"
        count "$tdir/tools.log"
    fi
    if [ "$(uname -m)" = x86_64 ]; then
        # (on an AVX2 CPU without AVX-512 the native run was this one)
        if grep -q avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
            if grep -q "\[avx2\]" "$OUT/native/test_core.log" 2>/dev/null; then
                note "avx2: the native run above is avx2"
            else
                run_suites avx2 env "$CC" -mavx2 -mfma $native_omp
            fi
        fi
        run_suites sse2 env "$CC" -mno-avx
    fi
    run_suites scalar env "$CC" -DMMGAN_NO_SIMD
    # tcc compiles the same scalar code as the run above, unoptimized: the
    # checks of large products (TEST_LIGHT, tests/harness.h), which the run
    # above makes, are left out (tcc's test_conv took 40 s with them)
    if has tcc; then
        SAVED=$WFLAGS; WFLAGS="-Wall"
        run_suites tcc env tcc -DTEST_LIGHT
        WFLAGS=$SAVED
    else
        skipped=$((skipped + 1)); note "skip: tcc not installed"
    fi
    ;;
cross)
    # triple  qemu  extra flags
    # -ffp-contract=fast: the bit-exact random streams must survive FMA fusion.
    # -DTEST_LIGHT (tests/harness.h): riscv64 and s390x have no SIMD kernels,
    # so their code is the scalar code the unit run checks natively in full;
    # there, the checks of products over 16M multiply-adds are left out
    # (under qemu's software floating point, s390x's test_conv took 13 minutes).
    # Every suite of every target is built first; then the runs go through
    # one pool of JOBS processes, the slowest first (test_conv and test_gemm,
    # s390x's above all: qemu emulates its floating point in software), so
    # that no target's suites queue behind one another while a core idles.
    # Each target's results are printed in order, with its own count.
    targets=""; mkdir -p "$OUT"
    for t in "aarch64-linux-gnu qemu-aarch64 -fopenmp -ffp-contract=fast" \
             "arm-linux-gnueabihf qemu-arm -march=armv7-a -mfpu=neon -mfloat-abi=hard -fopenmp" \
             "riscv64-linux-gnu qemu-riscv64 -fopenmp -DTEST_LIGHT" \
             "s390x-linux-gnu qemu-s390x -fopenmp -ffp-contract=fast -DTEST_LIGHT"; do
        set -- $t; triple=$1; qemu=$2; shift 2
        if ! has "$triple-gcc" || ! has "$qemu"; then
            skipped=$((skipped + 1)); note "skip: $triple-gcc or $qemu not installed"; continue
        fi
        build_suites "$triple" "$triple-gcc" -static "$@"
        targets="$targets $triple:$qemu"
    done
    pool="$OUT/cross-runs.txt"; : >"$pool"; listed=""
    for s in test_conv test_gemm $SUITES; do
        case " $listed " in *" $s "*) continue ;; esac
        listed="$listed $s"
        for tq in s390x riscv64 arm aarch64; do
            for t in $targets; do
                case $t in "$tq"*) ;; *) continue ;; esac
                triple=${t%%:*}; rm -f "$OUT/$triple/$s.rc"
                [ "$(bg_status "$OUT/$triple/$s.build")" = 0 ] && echo "${t#*:} $OUT/$triple/$s" >>"$pool"
            done
        done
    done
    # xargs -P is the pool: a run starts as soon as any other ends.
    xargs -P "$JOBS" -L 1 sh -c '"$0" "$1" >"$1.log" 2>&1; echo $? >"$1.rc"' <"$pool"
    for t in $targets; do
        triple=${t%%:*}; p0=$passed; f0=$failed
        for s in $SUITES; do report_suite "$triple" "$s" "$(cat "$OUT/$triple/$s.rc" 2>/dev/null || echo 1)"; done
        note "$triple: $((passed - p0)) passed, $((failed - f0)) failed"
    done
    ;;
avx512)
    # The AVX-512 kernels on an x86-64 CPU without AVX-512: the suites whose
    # code depends on the kernel set (not the files' and the API's; but
    # test_alloc's, that a built plan's run allocates nothing), with
    # SIMDe's portable intrinsics in place of AVX-512's (gcc only), and the
    # convolutions once more with F(4x4, 2x2), off there by default.
    mkdir -p "$OUT/checks"
    echo 'int main(void){return 0;}' >"$OUT/checks/emu.c"
    emu="-mavx2 -mfma -Wno-psabi -include tests/avx512_emu.h"
    if [ "$(uname -m)" != x86_64 ] || ! grep -q avx2 /proc/cpuinfo || ! grep -qw fma /proc/cpuinfo; then
        skipped=$((skipped + 1)); note "skip: the emulated AVX-512 kernels need an x86-64 CPU with AVX2 and FMA"
    elif grep -qw avx512f /proc/cpuinfo; then
        note "avx512: not needed, make test runs the AVX-512 kernels natively here"
    elif ! $CC $emu "$OUT/checks/emu.c" -o "$OUT/checks/emu" >/dev/null 2>&1; then
        skipped=$((skipped + 1)); note "skip: the emulated AVX-512 kernels need gcc and SIMDe (libsimde-dev)"
    else
        omp="-fopenmp"
        $CC -fopenmp "$OUT/checks/emu.c" -o "$OUT/checks/emu" >/dev/null 2>&1 || omp=""
        SUITES="test_core test_gemm test_vec test_conv test_graph test_loss test_opt test_alloc"
        run_suites avx512-emu env "$CC" $emu $omp
        SUITES=test_conv
        run_suites avx512-emu-winograd1 env "$CC" $emu $omp -DMMGAN_WINOGRAD=1
    fi
    ;;
*) note "usage: tests/run.sh [unit|cross|avx512]"; exit 2 ;;
esac

if [ $skipped -gt 0 ]; then
    note "total: $passed passed, $failed failed, $skipped skipped"
else
    note "total: $passed passed, $failed failed"
fi
[ $failed -eq 0 ]
