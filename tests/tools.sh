#!/bin/sh
# The evaluation kit's command-line tools as a user runs them:
#   tests/tools.sh DIR   (DIR holds mnist_eval, mnist_classifier, energy_curves, magan_mnist, gan_mnist, sample)
# Scores of the real test digits, generator checkpoints of both examples,
# reproducible classifier training, and bad input: a clear message and a
# non-zero status, never a crash.  Prints "tools: N passed, N failed".
set -u
bin=$1
tmp=$bin/tools.tmp
rm -rf "$tmp"; mkdir -p "$tmp"
passed=0; failed=0
ok() { if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL tools: $1"; fi; }
key() { sed -n "s/^$1 //p" "$2"; }
# A float comparison through awk: cond "a < b"-style expression on $1 and $2.
cmp_num() { awk -v a="$1" -v b="$2" "BEGIN { exit !($3) }"; }
# expect_error NAME STATUS PATTERN CMD...: exits with STATUS (1 or 2), says PATTERN on stderr.
expect_error() {
    name=$1; want=$2; pat=$3; shift 3
    "$@" >"$tmp/out" 2>"$tmp/err"; st=$?
    if [ $st -eq "$want" ] && grep -q "$pat" "$tmp/err"; then ok "$name" 0
    else ok "$name (status $st, stderr: $(head -c 300 "$tmp/err"))" 1; fi
}

t10k=data/mnist/t10k-images-idx3-ubyte.gz
t10l=data/mnist/t10k-labels-idx1-ubyte.gz

# The real test set scored as samples: the same as the ceiling, distance 0.
"$bin/mnist_eval" --samples $t10k --keys - --threads 1 >"$tmp/real.keys" 2>"$tmp/err"
ok "mnist_eval on the test set runs ($(cat "$tmp/err"))" $?
s=$(key samples_score "$tmp/real.keys"); r=$(key real_score "$tmp/real.keys"); f=$(key samples_fid "$tmp/real.keys")
cmp_num "$s" "$r" 'a == b && a > 9'; ok "test set scores its own ceiling, over 9 ($s vs $r)" $?
cmp_num "$f" 0 'a < 1e-3 && a >= 0'; ok "test set's Frechet distance to itself is 0 ($f)" $?
[ "$(key samples_classes_covered "$tmp/real.keys")" = 10 ]; ok "test set covers 10 classes" $?
"$bin/mnist_eval" --samples $t10k --threads 1 >"$tmp/table" 2>&1 && grep -q "classifier score" "$tmp/table" &&
    grep -q "Frechet distance" "$tmp/table" && grep -q "digit 9" "$tmp/table"
ok "the readable table" $?

# A small training set: the first 128 test digits and labels (IDX headers by hand).
{ printf '\000\000\010\003\000\000\000\200\000\000\000\034\000\000\000\034'
  gzip -dc $t10k | tail -c +17 | head -c 100352; } >"$tmp/small-images-idx3-ubyte"
{ printf '\000\000\010\001\000\000\000\200'; gzip -dc $t10l | tail -c +9 | head -c 128; } >"$tmp/small-labels-idx1-ubyte"

# Generator checkpoints of both examples are recognized and sampled.
mkdir -p "$tmp/magan" "$tmp/gan"
"$bin/magan_mnist" --data "$tmp/small-images-idx3-ubyte" --epochs 1 --threads 1 --out "$tmp/magan" >/dev/null 2>&1
ok "magan_mnist writes a checkpoint" $?
"$bin/mnist_eval" --ckpt "$tmp/magan/magan.safetensors" --n 300 --keys - --threads 1 \
    --save-samples "$tmp/magan-images-idx3-ubyte" >"$tmp/magan.keys" 2>"$tmp/err"
ok "mnist_eval on a magan_mnist checkpoint ($(cat "$tmp/err"))" $?
[ "$(key kind "$tmp/magan.keys")" = magan_mnist ] && [ "$(key samples_n "$tmp/magan.keys")" = 300 ]
ok "magan_mnist checkpoint recognized, 300 samples" $?
"$bin/mnist_eval" --samples "$tmp/magan-images-idx3-ubyte" --keys - --threads 1 >"$tmp/saved.keys" 2>"$tmp/err"
ok "the saved samples score again ($(cat "$tmp/err"))" $?
[ "$(key samples_n "$tmp/saved.keys")" = 300 ]; ok "the saved samples are 300" $?
"$bin/gan_mnist" --data "$tmp/small-images-idx3-ubyte" --iters 2 --every 1 --threads 1 --out "$tmp/gan" >/dev/null 2>&1
ok "gan_mnist writes a checkpoint" $?
"$bin/mnist_eval" --ckpt "$tmp/gan/gan.safetensors" --n 200 --keys - --threads 1 >"$tmp/gan.keys" 2>"$tmp/err"
ok "mnist_eval on a gan_mnist checkpoint ($(cat "$tmp/err"))" $?
[ "$(key kind "$tmp/gan.keys")" = gan_mnist ] && [ "$(key samples_n "$tmp/gan.keys")" = 200 ]
ok "gan_mnist checkpoint recognized, 200 samples" $?
# The energy curves of magan_mnist runs in one plot; other checkpoints refused.
"$bin/energy_curves" --out "$tmp/e.svg" A="$tmp/magan/magan.safetensors" B="$tmp/magan/magan.safetensors" >/dev/null 2>&1 &&
    grep -q "A E fake" "$tmp/e.svg" && [ "$(grep -c "<polyline" "$tmp/e.svg")" = 4 ]
ok "energy_curves draws 2 runs" $?
expect_error "energy_curves on a gan_mnist checkpoint" 1 "holds no energy curves" \
    "$bin/energy_curves" --out "$tmp/e2.svg" A="$tmp/gan/gan.safetensors"
[ ! -e "$tmp/e2.svg" ]; ok "energy_curves writes nothing on error" $?
expect_error "energy_curves without LABEL=" 1 "is not LABEL=CHECKPOINT" "$bin/energy_curves" --out "$tmp/e3.svg" x.safetensors
# Same seed, same samples: the keys agree exactly.
"$bin/mnist_eval" --ckpt "$tmp/gan/gan.safetensors" --n 200 --keys - --threads 2 >"$tmp/gan2.keys" 2>/dev/null
cmp -s "$tmp/gan.keys" "$tmp/gan2.keys"; ok "mnist_eval is deterministic (1 and 2 threads)" $?

# The classifier's training is reproducible: same seed, same bytes, any thread count.
for th in 1 2; do
    "$bin/mnist_classifier" --train "$tmp/small-images-idx3-ubyte" --test "$tmp/small-images-idx3-ubyte" \
        --epochs 2 --threads $th --out "$tmp/cls$th.safetensors" >"$tmp/cls$th.log" 2>&1
    ok "mnist_classifier trains ($th threads; $(tail -1 "$tmp/cls$th.log"))" $?
done
cmp -s "$tmp/cls1.safetensors" "$tmp/cls2.safetensors"; ok "classifier weights identical with 1 and 2 threads" $?
"$bin/mnist_classifier" --train "$tmp/small-images-idx3-ubyte" --test "$tmp/small-images-idx3-ubyte" \
    --epochs 2 --threads 1 --seed 2 --out "$tmp/cls3.safetensors" >/dev/null 2>&1
! cmp -s "$tmp/cls1.safetensors" "$tmp/cls3.safetensors"; ok "another seed, other weights" $?

# Bad input.
printf 'not a file' >"$tmp/junk"
gzip -dc $t10k | head -c 5000 >"$tmp/trunc-images-idx3-ubyte"
expect_error "missing samples file" 1 "mnist_eval: .*nope" "$bin/mnist_eval" --samples "$tmp/nope"
expect_error "truncated samples file" 1 "mnist_eval: .*promises" "$bin/mnist_eval" --samples "$tmp/trunc-images-idx3-ubyte"
expect_error "labels given as samples" 1 "mnist_eval: " "$bin/mnist_eval" --samples $t10l
expect_error "junk samples file" 1 "mnist_eval: " "$bin/mnist_eval" --samples "$tmp/junk"
expect_error "a generator as the classifier" 1 "not a checkpoint of tools/mnist_classifier" \
    "$bin/mnist_eval" --samples $t10k --classifier "$tmp/gan/gan.safetensors"
expect_error "the classifier as a generator" 1 "not a checkpoint of examples/magan_mnist or examples/gan_mnist" \
    "$bin/mnist_eval" --ckpt data/mnist_classifier.safetensors
expect_error "junk checkpoint" 1 "mnist_eval: " "$bin/mnist_eval" --ckpt "$tmp/junk"
expect_error "both --ckpt and --samples" 2 "either --ckpt" "$bin/mnist_eval" --ckpt a --samples b
expect_error "neither --ckpt nor --samples" 2 "either --ckpt" "$bin/mnist_eval"
expect_error "--n below the 10 splits" 2 "bad value '5' for --n" "$bin/mnist_eval" --ckpt a --n 5
expect_error "unknown option" 2 "unknown option --frobnicate" "$bin/mnist_eval" --frobnicate
expect_error "classifier: no labels beside the images" 2 "images-idx3" "$bin/mnist_classifier" --train "$tmp/junk"
expect_error "classifier: missing training file" 1 "mnist_classifier: .*nope" \
    "$bin/mnist_classifier" --train "$tmp/nope-images-idx3-ubyte" --out "$tmp/x.safetensors"
expect_error "classifier: bad epochs" 2 "bad value '0' for --epochs" "$bin/mnist_classifier" --epochs 0
[ ! -e "$tmp/x.safetensors" ]; ok "a failed training writes no checkpoint" $?
# The examples' own checks (a review's probes): numbers that wrapped around, a
# resume of another model or of a finished run, results lost on a full disk.
expect_error "magan_mnist: a negative seed" 2 "bad value '-5' for --seed" "$bin/magan_mnist" --seed -5
expect_error "magan_mnist: 2^32 + 1 epochs" 2 "epochs 1 to" "$bin/magan_mnist" --epochs 4294967297
expect_error "magan_mnist: a NaN margin" 2 "fixed-margin >= 0" "$bin/magan_mnist" --fixed-margin nan
expect_error "magan_mnist: a gan_mnist checkpoint resumed" 1 "not a magan_mnist checkpoint" \
    "$bin/magan_mnist" --data "$tmp/small-images-idx3-ubyte" --epochs 2 --threads 1 --out "$tmp/magan" \
    --resume "$tmp/gan/gan.safetensors"
expect_error "magan_mnist: resumed without its --strict" 1 "trained without --strict" \
    "$bin/magan_mnist" --data "$tmp/small-images-idx3-ubyte" --epochs 2 --threads 1 --out "$tmp/magan" --strict \
    --resume "$tmp/magan/magan.safetensors"
"$bin/magan_mnist" --data "$tmp/small-images-idx3-ubyte" --epochs 1 --threads 1 --out "$tmp/magan" \
    --resume "$tmp/magan/magan.safetensors" >"$tmp/out" 2>&1 && grep -q "nothing to do" "$tmp/out"
ok "magan_mnist: a finished run resumed has nothing to do ($(tail -c 200 "$tmp/out"))" $?
if [ -c /dev/full ]; then
    "$bin/mnist_eval" --samples $t10k --threads 1 >/dev/full 2>"$tmp/err"; st=$?
    [ $st -eq 1 ] && grep -q "stdout" "$tmp/err"; ok "mnist_eval: results to a full disk fail (status $st)" $?
    expect_error "a grid saved to /dev/full" 1 "No space left" \
        "$bin/sample" --ckpt "$tmp/gan/gan.safetensors" --out /dev/full
    [ -c /dev/full ]; ok "/dev/full is still a device" $?
fi

echo "tools: $passed passed, $failed failed"
[ $failed -eq 0 ]
