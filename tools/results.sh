#!/bin/sh
# results.sh - reruns the experiments of docs/results.md and scores them.
#
#   sh tools/fetch_mnist.sh          the 60,000 training digits, once
#   make examples tools
#   sh tools/results.sh magan        MAGAN, then EBGAN with margins 10, 5, 1.08
#   sh tools/results.sh table1       12 runs of examples/gan_mnist: hinge and WGAN
#                                    losses x L1, L2, L-inf penalties x squared
#                                    (least squares) and hinge shapes, lambda 20
#   sh tools/results.sh eval         scores every finished run with tools/mnist_eval
#                                    (runs/NAME/eval.keys) and prints the tables
#
# Budget (environment): EPOCHS (MAGAN/EBGAN epochs, default 20; the paper: 200),
# ITERS (generator iterations per table1 run, default 1500), THREADS (default 1),
# SEED (default 1), RUNS (output folder, default runs).  Every run of a group
# has the same seed and budget.  A run already finished is not run again.
set -u
EPOCHS=${EPOCHS:-20}; ITERS=${ITERS:-1500}; THREADS=${THREADS:-1}; SEED=${SEED:-1}; RUNS=${RUNS:-runs}
TRAIN=${TRAIN:-data/mnist-full/train-images-idx3-ubyte.gz}
cd "$(dirname "$0")/.." || exit 2

need() { [ -x "$1" ] || { echo "results.sh: $1 is missing: run 'make examples tools' first" >&2; exit 2; }; }
# run NAME CMD...: runs CMD once, its output in RUNS/NAME/log.txt, its time in RUNS/NAME/time.txt.
run() {
    name=$1; shift
    dir=$RUNS/$name
    if [ -f "$dir/done" ]; then echo "$name: done already"; return 0; fi
    mkdir -p "$dir"
    echo "$name: $*"
    start=$(date +%s)
    if "$@" --out "$dir" >"$dir/log.txt" 2>&1; then
        echo $(( $(date +%s) - start )) >"$dir/time.txt"
        echo "$*" >"$dir/command.txt"
        touch "$dir/done"
    else
        echo "$name: failed, see $dir/log.txt" >&2
        return 1
    fi
}

case "${1:-}" in
magan)
    need build/magan_mnist
    [ -f "$TRAIN" ] || { echo "results.sh: $TRAIN is missing: run 'sh tools/fetch_mnist.sh' first" >&2; exit 2; }
    run magan ./build/magan_mnist --data "$TRAIN" --epochs "$EPOCHS" --threads "$THREADS" --seed "$SEED"
    for m in 10 5 1.08; do
        run ebgan_$m ./build/magan_mnist --data "$TRAIN" --epochs "$EPOCHS" --threads "$THREADS" --seed "$SEED" \
            --fixed-margin $m
    done
    ;;
table1)
    need build/gan_mnist
    [ -f "$TRAIN" ] || { echo "results.sh: $TRAIN is missing: run 'sh tools/fetch_mnist.sh' first" >&2; exit 2; }
    for loss in hinge wgan; do
        for norm in l1 l2 linf; do
            for shape in squared hinge; do
                run t1_${loss}_${norm}_${shape} ./build/gan_mnist --data "$TRAIN" --loss $loss --penalty interpolate \
                    --norm $norm --shape $shape --lambda 20 --beta1 0.5 --beta2 0.99 --iters "$ITERS" \
                    --every "$ITERS" --threads "$THREADS" --seed "$SEED"
            done
        done
    done
    ;;
eval)
    need build/mnist_eval
    for dir in "$RUNS"/*/; do
        name=$(basename "$dir")
        ck=$(ls "$dir"/magan.safetensors "$dir"/gan.safetensors 2>/dev/null | head -1)
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
