#!/bin/sh
# Kills a process with SIGKILL while it saves 4 MB checkpoints in a loop, many
# times at varied moments: each time the file left behind must load whole
# (every value equal to its version number).  Usage: crash_ckpt.sh BINARY
bin=$1; f=build/crash_ckpt.safetensors; ok=0; bad=0; midsave=0
rm -f "$f" "$f.tmp"
for i in $(seq 1 30); do
    "$bin" --writer "$f" >build/crash_ckpt.log 2>&1 &
    pid=$!
    # wait for the first complete save, then a varied extra delay
    n=0; while ! grep -q first build/crash_ckpt.log 2>/dev/null && [ $n -lt 200 ]; do sleep 0.02; n=$((n + 1)); done
    sleep "$(awk "BEGIN { print ($i * 7 % 50) / 1000 }")"
    kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
    [ -f "$f.tmp" ] && midsave=$((midsave + 1))   # killed in the middle of a save
    if "$bin" --check "$f"; then ok=$((ok + 1)); else bad=$((bad + 1)); echo "FAIL: checkpoint unreadable after kill $i"; fi
done
rm -f "$f" "$f.tmp" build/crash_ckpt.log
echo "crash_ckpt: $ok passed, $bad failed ($midsave of the kills landed mid-save)"
[ $bad -eq 0 ]
