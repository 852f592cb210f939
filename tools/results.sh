#!/bin/sh
# results.sh - reruns the experiments of docs/results.md and scores them.
#
#   sh tools/fetch_mnist.sh          the 60,000 training digits, once
#   make examples tools
#   sh tools/results.sh magan        MAGAN, then EBGAN with margins 10, 5 and 1.08
#   sh tools/results.sh table1       12 runs of examples/gan_mnist: hinge and WGAN
#                                    losses x L1, L2, L-inf penalties x squared
#                                    (least squares) and hinge shapes, lambda 20
#   sh tools/results.sh eval         scores every finished run with tools/mnist_eval
#                                    (runs/NAME/eval.keys) and prints the tables
#
# Budget (environment): EPOCHS (MAGAN/EBGAN epochs, default 20; the paper: 200),
# ITERS (generator iterations per table1 run, default 1500), THREADS (default 1),
# SEED (default 1), RUNS (output folder, default runs), LOSSES (table1's losses,
# default "hinge wgan": two shells with one each run in parallel), MARGINS (the
# EBGAN margins, default "10 5 1.08").  Every run of a group has the same seed
# and budget.  Runs are named by their budget (runs/magan_20, runs/t1_..._1500);
# a finished run is not run again, and a larger budget continues the largest
# finished smaller one.
set -u
EPOCHS=${EPOCHS:-20}; ITERS=${ITERS:-1500}; THREADS=${THREADS:-1}; SEED=${SEED:-1}; RUNS=${RUNS:-runs}
LOSSES=${LOSSES:-hinge wgan}; MARGINS=${MARGINS:-10 5 1.08}
TRAIN=${TRAIN:-data/mnist-full/train-images-idx3-ubyte.gz}
cd "$(dirname "$0")/.." || exit 2

need() { [ -x "$1" ] || { echo "results.sh: $1 is missing: run 'make examples tools' first" >&2; exit 2; }; }
# run NAME CMD...: runs CMD once, its output in RUNS/NAME/log.txt, its seconds in RUNS/NAME/time.txt.
run() {
    name=$1; shift
    dir=$RUNS/$name
    if [ -f "$dir/done" ]; then echo "$name: done already"; return 0; fi
    mkdir -p "$dir"
    echo "$name: $*"
    start=$(date +%s)
    if "$@" --out "$dir" >"$dir/log.txt" 2>&1; then
        # A continued run's time includes the run it continued (prior.txt).
        echo $(( $(date +%s) - start + $(cat "$dir/prior.txt" 2>/dev/null || echo 0) )) >"$dir/time.txt"
        echo "$*" >"$dir/command.txt"
        touch "$dir/done"
    else
        echo "$name: failed, see $dir/log.txt" >&2
        return 1
    fi
}

# continue_from NAME BUDGET CKPT: sets $resume to continue the finished run
# NAME_B with the largest budget B below BUDGET, if any (the examples' --resume
# is bit-identical to training straight through); its time carries over.
continue_from() {
    resume=""
    [ -f "$RUNS/${1}_$2/done" ] && return 0
    from=$(ls -d "$RUNS/${1}"_*/ 2>/dev/null | sed 's|/$||; s|.*_||' | grep -x '[0-9]*' | sort -n |
           awk -v m="$2" '$1 < m { b = $1 } END { print b }')
    [ -n "$from" ] && [ -f "$RUNS/${1}_$from/done" ] || return 0
    mkdir -p "$RUNS/${1}_$2"
    cp "$RUNS/${1}_$from/$3" "$RUNS/${1}_$2/start.safetensors"
    cp "$RUNS/${1}_$from/time.txt" "$RUNS/${1}_$2/prior.txt"
    resume="--resume $RUNS/${1}_$2/start.safetensors"
}

case "${1:-}" in
magan)
    need build/magan_mnist
    [ -f "$TRAIN" ] || { echo "results.sh: $TRAIN is missing: run 'sh tools/fetch_mnist.sh' first" >&2; exit 2; }
    continue_from magan "$EPOCHS" magan.safetensors
    run magan_$EPOCHS ./build/magan_mnist --data "$TRAIN" --epochs "$EPOCHS" --threads "$THREADS" --seed "$SEED" $resume
    for m in $MARGINS; do
        continue_from ebgan_$m "$EPOCHS" magan.safetensors
        run ebgan_${m}_$EPOCHS ./build/magan_mnist --data "$TRAIN" --epochs "$EPOCHS" --threads "$THREADS" \
            --seed "$SEED" --fixed-margin $m $resume
    done
    ;;
table1)
    need build/gan_mnist
    [ -f "$TRAIN" ] || { echo "results.sh: $TRAIN is missing: run 'sh tools/fetch_mnist.sh' first" >&2; exit 2; }
    for loss in $LOSSES; do
        for norm in l1 l2 linf; do
            for shape in squared hinge; do
                cell=t1_${loss}_${norm}_${shape}
                continue_from $cell "$ITERS" gan.safetensors
                run ${cell}_$ITERS ./build/gan_mnist --data "$TRAIN" --loss $loss --penalty interpolate \
                    --norm $norm --shape $shape --lambda 20 --beta1 0.5 --beta2 0.99 --iters "$ITERS" \
                    --every "$ITERS" --threads "$THREADS" --seed "$SEED" $resume
            done
        done
    done
    ;;
eval)
    need build/mnist_eval
    for dir in "$RUNS"/*/; do
        name=$(basename "$dir")
        ck=$(ls "$dir"magan.safetensors "$dir"gan.safetensors 2>/dev/null | head -1)
        [ -f "$dir/done" ] && [ -n "$ck" ] || continue
        case $name in t1_*) n=10000 ;; *) n=50000 ;; esac
        if [ ! -f "$dir/eval.keys" ] || [ "$ck" -nt "$dir/eval.keys" ]; then
            ./build/mnist_eval --ckpt "$ck" --n $n --seed "$SEED" --threads "$THREADS" --keys "$dir/eval.keys" \
                >"$dir/eval.txt" 2>&1 || { echo "$name: evaluation failed, see $dir/eval.txt" >&2; continue; }
        fi
    done
    printf '%-24s %9s %16s %8s %8s %10s %9s\n' run minutes "score" covered "KL unif" "Frechet" "final m"
    for f in "$RUNS"/*/eval.keys; do
        [ -f "$f" ] || continue
        dir=$(dirname "$f"); name=$(basename "$dir")
        k() { sed -n "s/^$1 //p" "$f"; }
        m=$(tr '\r' '\n' <"$dir/log.txt" | sed -n 's/.*margin \([0-9.]*\).*(.*s).*/\1/p' | tail -1)
        printf '%-24s %9.1f %8.3f +- %5.3f %8s %8.4f %10.3f %9s\n' "$name" "$(awk "BEGIN{print $(cat "$dir/time.txt")/60}")" \
            "$(k samples_score)" "$(k samples_score_std)" "$(k samples_classes_covered)" "$(k samples_kl_uniform)" \
            "$(k samples_fid)" "${m:--}"
    done
    ;;
*)
    sed -n 2,18p "$0"; exit 2 ;;
esac
