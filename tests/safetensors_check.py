#!/usr/bin/env python3
"""Reads a checkpoint written by mmgan (tests/test_ckpt.c) with nothing but
struct and json, as a PyTorch user's safetensors reader would, and compares
its arrays with values recomputed here: a = i*0.5 - 3 (3x4), b = 1/(i+1) (5),
metadata step = 42, and mmgan.data_crc32 the CRC-32 of the data section
(zlib's)."""
import json
import struct
import sys
import zlib

path = sys.argv[1] if len(sys.argv) > 1 else "build/test_ckpt.safetensors"
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL safetensors:", what)


with open(path, "rb") as f:
    blob = f.read()
(hlen,) = struct.unpack("<Q", blob[:8])
header = json.loads(blob[8:8 + hlen].decode("utf-8"))
data = blob[8 + hlen:]
check((8 + hlen) % 8 == 0, "data section 8-byte aligned")
meta = dict(header.get("__metadata__", {}))
crc = meta.pop("mmgan.data_crc32", None)
check(meta == {"step": "42"}, "metadata %r" % header.get("__metadata__"))
check(crc == "%08x" % zlib.crc32(data), "data CRC-32 %r, zlib's %08x" % (crc, zlib.crc32(data)))
f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]
want = {"a": ([3, 4], [f32(i * 0.5 - 3.0) for i in range(12)]),
        "b": ([5], [f32(1.0 / (i + 1)) for i in range(5)])}
for name, (shape, values) in want.items():
    e = header.get(name, {})
    check(e.get("dtype") == "F32" and e.get("shape") == shape, "%s: dtype/shape %r" % (name, e))
    b, end = e.get("data_offsets", [0, 0])
    got = list(struct.unpack("<%df" % len(values), data[b:end])) if end - b == 4 * len(values) else []
    check(got == values, "%s: values %r" % (name, got[:4]))
check(sum(e["data_offsets"][1] - e["data_offsets"][0] for k, e in header.items() if k != "__metadata__") == len(data),
      "tensors cover the data section")
print("safetensors %s: %d passed, %d failed" % (path, passed, failed))
print("total: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
