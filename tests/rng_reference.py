#!/usr/bin/env python3
"""Independent reference for mmgan's random streams (PCG32 XSH-RR, the
polar normal method, the portable log).  Prints the known answers that
tests/test_core.c checks; rerun it to regenerate or audit them.
Python floats are IEEE doubles with no FMA contraction, so each step below
is one correctly rounded operation, as the C code promises to be."""
import math, struct

M64 = (1 << 64) - 1

class PCG32:
    def __init__(self, seed, stream):
        self.state, self.inc = 0, ((stream << 1) | 1) & M64
        self.u32(); self.state = (self.state + seed) & M64; self.u32()
        self.spare = None
    def u32(self):
        old = self.state
        self.state = (old * 6364136223846793005 + self.inc) & M64
        xs = (((old >> 18) ^ old) >> 27) & 0xffffffff
        rot = old >> 59
        return ((xs >> rot) | (xs << ((32 - rot) & 31))) & 0xffffffff

def f32(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]

def f32bits(x):
    return struct.unpack('<I', struct.pack('<f', x))[0]

def log_portable(x):
    ln2_hi, ln2_lo = 6.93147180369123816490e-01, 1.90821492927058770002e-10
    m, e = math.frexp(x)
    if m < 0.70710678118654752440:
        m *= 2.0; e -= 1
    f = (m - 1.0) / (m + 1.0)
    f2 = f * f
    p = 1.0 / 23.0
    for i in range(21, 2, -2):
        p = p * f2 + 1.0 / i
    p = (f * f2) * p
    return e * ln2_hi + ((2.0 * f + 2.0 * p) + e * ln2_lo)

def normal(r):
    if r.spare is not None:
        s, r.spare = r.spare, None
        return s
    while True:
        u = (r.u32() >> 8) * (1.0 / 8388608.0) - 1.0
        v = (r.u32() >> 8) * (1.0 / 8388608.0) - 1.0
        s = u * u + v * v
        if 0.0 < s < 1.0:
            break
    f = math.sqrt(-2.0 * log_portable(s) / s)
    r.spare = f32(v * f)
    return f32(u * f)

if __name__ == '__main__':
    r = PCG32(42, 54)
    print('u32 seed 42 stream 54:', ', '.join('0x%08xu' % r.u32() for _ in range(6)))
    r = PCG32(2026, 7)
    print('normal bits seed 2026 stream 7:', ', '.join('0x%08xu' % f32bits(normal(r)) for _ in range(8)))
    r = PCG32(1, 0)
    acc = 0
    for _ in range(100000):
        acc = (acc * 31 + f32bits(normal(r))) & 0xffffffff
    print('hash of 100000 normals seed 1 stream 0: 0x%08xu' % acc)
    worst = 0.0
    for i in range(1, 200000):
        x = i / 200000.0
        worst = max(worst, abs(log_portable(x) - math.log(x)) / abs(math.log(x)) if x != 1 else 0)
    print('log_portable max relative error vs math.log on (0,1):', worst)
