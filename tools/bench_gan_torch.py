#!/usr/bin/python3
"""PyTorch reference for the GAN-step comparison of `make bench`.

One training iteration (a discriminator step, then a generator step that
reuses the same fake batch) of three small MNIST-sized GANs, batch 64, float32
on the CPU, written in plain PyTorch so that mmgan.h's timings and losses have
something to be held against.  This is a reference only: the library never
depends on it, and it needs nothing but Debian's python3-torch (1.13), hence
/usr/bin/python3.

  magan           MAGAN (appendix B.1 of the paper): auto-encoder energy D,
                  margin 10, Adamax(5e-4, 0.5, 0.999)
  hinge_linf_gp   small DCGAN (BN generator, conv critic), hinge loss plus
                  20 * mean(relu(max|grad_x D(xhat)| - 1)), Adam(2e-4, 0.5, 0.99)
  hinge           the same DCGAN with the hinge loss alone

Usage:
  /usr/bin/python3 tools/bench_gan_torch.py bench --case CASE --threads N
          [--iters 30] [--warmup 5] [--csv FILE]
      times `iters` iterations after `warmup` untimed ones; prints a human
      line and `torch CASE THREADS median_ms min_ms max_ms peak_rss_mib`.
  /usr/bin/python3 tools/bench_gan_torch.py factor --threads N [--iters 60] [--warmup 5]
      the penalty factor in one process: hinge_linf_gp and hinge side by
      side, their iterations alternating (the order swapped every pair);
      prints a human line and `torch factor THREADS gp_ms hinge_ms
      median_ratio q1 q3` (times the medians, the ratio the median of the
      pairs' ratios and its quartiles).
  /usr/bin/python3 tools/bench_gan_torch.py check --case CASE
          --init FILE.safetensors [--iters K]
      runs K iterations from the weights and inputs in FILE (G.* and D.*
      parameters and batch-norm statistics; x.k, z.k and for hinge_linf_gp
      u.k for k < K) on one thread and prints `iter k d_loss g_loss penalty`.
  /usr/bin/python3 tools/bench_gan_torch.py export-random --case CASE
          --out FILE --iters K [--seed S] [--d-scale S]
      writes such a file from PyTorch's own initialisation (a testing aid).
"""
import argparse
import array
import json
import os
import resource
import statistics
import struct
import sys
import time

BATCH = 64
CASES = ("magan", "hinge_linf_gp", "hinge")


def parse_args(argv):
    p = argparse.ArgumentParser(description="PyTorch reference of the GAN-step benchmark.")
    # export-random is left out of the listed choices: it only feeds `check`.
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{bench,factor,check}")
    b = sub.add_parser("bench", help="time training iterations")
    b.add_argument("--case", choices=CASES, required=True)
    b.add_argument("--threads", type=int, required=True)
    b.add_argument("--iters", type=int, default=30)
    b.add_argument("--warmup", type=int, default=5)
    b.add_argument("--csv", metavar="FILE")
    f = sub.add_parser("factor", help="the penalty factor, alternating iterations")
    f.add_argument("--threads", type=int, required=True)
    f.add_argument("--iters", type=int, default=60)
    f.add_argument("--warmup", type=int, default=5)
    c = sub.add_parser("check", help="losses from given weights and inputs")
    c.add_argument("--case", choices=CASES, required=True)
    c.add_argument("--init", required=True, metavar="FILE.safetensors")
    c.add_argument("--iters", type=int)
    e = sub.add_parser("export-random")
    e.add_argument("--case", choices=CASES, required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--iters", type=int, default=2)
    e.add_argument("--seed", type=int, default=0)
    # Default-initialised critics have input gradients far below 1, so the
    # L-inf penalty is zero at first; scaling D's weights makes it bite.
    e.add_argument("--d-scale", type=float, default=1.0)
    a = p.parse_args(argv)
    if getattr(a, "threads", 1) < 1:
        p.error("--threads must be at least 1")
    if a.iters is not None and a.iters < (1 if a.cmd != "check" else 0):
        p.error("--iters too small")
    if getattr(a, "warmup", 0) < 0:
        p.error("--warmup must be >= 0")
    return a


def ensure_thread_env(threads):
    """Re-executes this script unless the thread environment is as wanted.

    OpenBLAS and OpenMP read these variables once, when torch is loaded, so
    they must be right before the import.  OPENBLAS_CORETYPE=Haswell (exported
    by this machine's environment) costs OpenBLAS half its speed, so it is
    dropped, unless BENCH_OPENBLAS_CORETYPE names the core type that
    tools/openblas_core.sh measured fastest here.  OpenBLAS itself stays at
    one thread so that it does not fight torch's OpenMP pool.

    glibc's malloc is told to keep freed memory: by default it maps each
    block of more than 128 KiB afresh (the threshold moves up only as far as
    blocks freed) and returns the top of its heap, so every iteration pays
    page faults and zeroing for the activations it allocates.  That made the
    three steps 1.4-1.9x slower (PyTorch 1.13 here), the two-thread DCGAN
    step swinging between 160 and 330 ms; with these two settings every
    iteration runs at about the fastest, peak memory within 5%."""
    want = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
    core = os.environ.get("BENCH_OPENBLAS_CORETYPE", "")
    env = dict(os.environ)
    if env.get("OPENBLAS_CORETYPE", "") == core and all(env.get(k) == v for k, v in want.items()):
        return
    env.pop("OPENBLAS_CORETYPE", None)
    if core:
        want["OPENBLAS_CORETYPE"] = core
    env.update(want)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


if __name__ == "__main__":
    ARGS = parse_args(sys.argv[1:])
    ensure_thread_env(ARGS.threads if ARGS.cmd in ("bench", "factor") else 1)

# Imported only now: see ensure_thread_env.
try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("bench_gan_torch.py: torch is not importable from %s; run it with "
             "/usr/bin/python3 (Debian's python3-torch)" % sys.executable)


# ---------------------------------------------------------------- safetensors

def read_safetensors(path):
    """Returns ({name: float32 tensor}, metadata) from a safetensors file.

    Only F32 tensors are converted; others are skipped, as the callers only
    ever ask for F32 ones."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError("%s: too short for a safetensors file" % path)
    (hlen,) = struct.unpack("<Q", blob[:8])
    if 8 + hlen > len(blob):
        raise ValueError("%s: header length %d runs past the end" % (path, hlen))
    header = json.loads(blob[8:8 + hlen].decode("utf-8"))
    data = memoryview(blob)[8 + hlen:]
    tensors = {}
    for name, e in header.items():
        if name == "__metadata__" or e.get("dtype") != "F32":
            continue
        shape = [int(d) for d in e["shape"]]
        begin, end = (int(o) for o in e["data_offsets"])
        count = 1
        for d in shape:
            count *= d
        if end - begin != 4 * count or begin < 0 or end > len(data):
            raise ValueError("%s: %s: data_offsets %r do not fit shape %r"
                             % (path, name, e["data_offsets"], shape))
        values = array.array("f")
        values.frombytes(data[begin:end])
        if sys.byteorder != "little":
            values.byteswap()
        if count == 0:
            tensors[name] = torch.empty(shape)
        else:
            tensors[name] = torch.frombuffer(values, dtype=torch.float32).clone().reshape(shape)
    return tensors, header.get("__metadata__", {})


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} as F32 safetensors; metadata values become strings."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        t = t.detach().to(device="cpu", dtype=torch.float32).contiguous()
        raw = bytearray(4 * t.numel())
        if t.numel():
            # A tensor over the bytearray's memory: the copy lands in raw,
            # without needing numpy.
            torch.frombuffer(raw, dtype=torch.float32).copy_(t.reshape(-1))
        if sys.byteorder != "little":
            swapped = array.array("f")
            swapped.frombytes(bytes(raw))
            swapped.byteswap()
            raw = bytearray(swapped.tobytes())
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    # Pad with spaces so that the data section starts 8-byte aligned.
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)


# --------------------------------------------------------------------- models

class MaganG(nn.Module):
    def __init__(self):
        super().__init__()
        self.deconv1 = nn.ConvTranspose2d(50, 128, 7, 1, 0)
        self.deconv2 = nn.ConvTranspose2d(128, 64, 4, 2, 1)
        self.deconv3 = nn.ConvTranspose2d(64, 1, 4, 2, 1)

    def forward(self, z):
        h = F.relu(self.deconv1(z))
        h = F.relu(self.deconv2(h))
        return torch.sigmoid(self.deconv3(h))


class MaganD(nn.Module):
    """Auto-encoder; its reconstruction error is the energy."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 256)
        self.fc3 = nn.Linear(256, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x.flatten(1)))
        h = F.relu(self.fc2(h))
        return torch.sigmoid(self.fc3(h)).view_as(x)


class DcganG(nn.Module):
    def __init__(self):
        super().__init__()
        self.deconv1 = nn.ConvTranspose2d(128, 256, 7, 1, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(256)
        self.deconv2 = nn.ConvTranspose2d(256, 128, 4, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(128)
        self.deconv3 = nn.ConvTranspose2d(128, 1, 4, 2, 1, bias=True)

    def forward(self, z):
        h = F.relu(self.bn1(self.deconv1(z)))
        h = F.relu(self.bn2(self.deconv2(h)))
        return torch.tanh(self.deconv3(h))


class DcganD(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, 4, 2, 1)
        self.conv2 = nn.Conv2d(64, 128, 4, 2, 1)
        self.fc = nn.Linear(6272, 1)

    def forward(self, x):
        h = F.leaky_relu(self.conv1(x), 0.2)
        h = F.leaky_relu(self.conv2(h), 0.2)
        return self.fc(h.flatten(1))


# --------------------------------------------------------------------- losses

MAGAN_MARGIN = 10.0
GP_LAMBDA = 20.0


def energy(D, x):
    return (x - D(x)).pow(2).flatten(1).sum(1)


def magan_d_loss(D, x, fake, u):
    zero = torch.zeros(())
    return energy(D, x).mean() + F.relu(MAGAN_MARGIN - energy(D, fake)).mean(), zero


def magan_g_loss(D, fake):
    return energy(D, fake).mean()


def hinge_d_loss(D, x, fake, u):
    zero = torch.zeros(())
    return F.relu(1.0 - D(x)).mean() + F.relu(1.0 + D(fake)).mean(), zero


def linf_penalty(D, x, fake, u):
    xhat = (u * x + (1.0 - u) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(D(xhat).sum(), xhat, create_graph=True)
    n = g.abs().flatten(1).amax(1)
    return GP_LAMBDA * F.relu(n - 1.0).mean()


def hinge_linf_gp_d_loss(D, x, fake, u):
    loss, _ = hinge_d_loss(D, x, fake, u)
    penalty = linf_penalty(D, x, fake, u)
    return loss + penalty, penalty


def hinge_g_loss(D, fake):
    return -D(fake).mean()


class Case:
    def __init__(self, name):
        self.name = name
        if name == "magan":
            self.G, self.D = MaganG, MaganD
            self.z_dim, self.real_lo, self.real_hi = 50, 0.0, 1.0
            self.d_loss, self.g_loss = magan_d_loss, magan_g_loss
        else:
            self.G, self.D = DcganG, DcganD
            self.z_dim, self.real_lo, self.real_hi = 128, -1.0, 1.0
            self.g_loss = hinge_g_loss
            self.d_loss = hinge_linf_gp_d_loss if name == "hinge_linf_gp" else hinge_d_loss
        self.uses_u = name == "hinge_linf_gp"

    def optimizer(self, params):
        if self.name == "magan":
            return torch.optim.Adamax(params, lr=5e-4, betas=(0.5, 0.999), eps=1e-8)
        return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.99), eps=1e-8)

    def noise(self):
        return torch.randn(BATCH, self.z_dim, 1, 1)

    def uniform(self):
        return torch.rand(BATCH, 1, 1, 1)

    def real_batch(self):
        return torch.rand(BATCH, 1, 28, 28) * (self.real_hi - self.real_lo) + self.real_lo


def build(case):
    G, D = case.G(), case.D()
    G.train()
    D.train()
    return G, D, case.optimizer(G.parameters()), case.optimizer(D.parameters())


# ----------------------------------------------------------------------- step

def train_step(case, G, D, opt_g, opt_d, x, z, u, check=False):
    """One D step and one G step on the same fake batch (as PyTorch's DCGAN
    example).  Returns the detached (d_loss, g_loss, penalty).

    Gradients are released right after each optimizer step, so that both
    optimizers start from None; check=True asserts that the D step leaves G
    without gradients and the G step leaves D without them."""
    fake = G(z)
    d_loss, penalty = case.d_loss(D, x, fake.detach(), u)
    d_loss.backward()
    if check:
        assert all(p.grad is None for p in G.parameters()), "D step reached G's weights"
    opt_d.step()
    opt_d.zero_grad(set_to_none=True)

    # Only the path through D to the fake images is needed; frozen D weights
    # make autograd skip their gradients altogether.
    for p in D.parameters():
        p.requires_grad_(False)
    g_loss = case.g_loss(D, fake)
    g_loss.backward()
    for p in D.parameters():
        p.requires_grad_(True)
    if check:
        assert all(p.grad is None for p in D.parameters()), "G step made D weight gradients"
    opt_g.step()
    opt_g.zero_grad(set_to_none=True)
    return d_loss.detach(), g_loss.detach(), penalty.detach()


# ---------------------------------------------------------------------- bench

def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def bench(a):
    torch.manual_seed(0)
    case = Case(a.case)
    G, D, opt_g, opt_d = build(case)
    # Timing does not depend on the pixels; a fixed batch in the case's range will do.
    x = case.real_batch()

    def iteration():
        z = case.noise()
        u = case.uniform() if case.uses_u else None
        train_step(case, G, D, opt_g, opt_d, x, z, u)

    for _ in range(a.warmup):
        iteration()
    times = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        iteration()
        times.append((time.perf_counter() - t0) * 1e3)
    med, lo, hi, rss = statistics.median(times), min(times), max(times), peak_rss_mib()
    print("torch %s, %d thread%s: median %.3f ms per iteration (min %.3f, max %.3f) over %d "
          "iterations after %d warm-up, peak RSS %.1f MiB"
          % (a.case, a.threads, "" if a.threads == 1 else "s", med, lo, hi, a.iters, a.warmup, rss))
    print("torch %s %d %.3f %.3f %.3f %.1f" % (a.case, a.threads, med, lo, hi, rss))
    if a.csv:
        new = not os.path.exists(a.csv) or os.path.getsize(a.csv) == 0
        with open(a.csv, "a") as f:
            if new:
                f.write("impl,case,threads,median_ms,min_ms,max_ms,peak_rss_mib\n")
            f.write("torch,%s,%d,%.3f,%.3f,%.3f,%.1f\n" % (a.case, a.threads, med, lo, hi, rss))


def factor(a):
    """The penalty factor within one process.  Measured as the ratio of two
    processes' medians it swings with the load of each process's seconds;
    here each pair of iterations sees about the same load, and the order
    alternates so that neither case always runs right after the other."""
    torch.manual_seed(0)
    cases = [Case("hinge_linf_gp"), Case("hinge")]
    built = [build(c) for c in cases]
    x = cases[0].real_batch()

    def iteration(k):
        case, (G, D, opt_g, opt_d) = cases[k], built[k]
        z = case.noise()
        u = case.uniform() if case.uses_u else None
        t0 = time.perf_counter()
        train_step(case, G, D, opt_g, opt_d, x, z, u)
        return (time.perf_counter() - t0) * 1e3

    tg, th, r = [], [], []
    for i in range(a.warmup + a.iters):
        d = [0.0, 0.0]
        for k in (0, 1) if i % 2 == 0 else (1, 0):
            d[k] = iteration(k)
        if i >= a.warmup:
            tg.append(d[0])
            th.append(d[1])
            r.append(d[0] / d[1])

    g, h = statistics.median(tg), statistics.median(th)
    # quartiles interpolated between the sorted ratios, as bench_gan.c's
    q1, m, q3 = statistics.quantiles(r, n=4, method="inclusive") if len(r) > 1 else r * 3
    print("torch penalty factor, %d thread%s: hinge_linf_gp %.3f ms, hinge %.3f ms (medians), factor %.3f "
          "(median of %d alternating pairs' ratios; quartiles %.3f-%.3f)"
          % (a.threads, "" if a.threads == 1 else "s", g, h, m, a.iters, q1, q3))
    print("torch factor %d %.3f %.3f %.4f %.4f %.4f" % (a.threads, g, h, m, q1, q3))


# ---------------------------------------------------------------------- check

def model_tensors(model):
    """state_dict entries the files carry: parameters and BN running stats
    (num_batches_tracked is an integer count, not part of the format)."""
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def input_names(case, k):
    return ["x.%d" % k, "z.%d" % k] + (["u.%d" % k] if case.uses_u else [])


def input_shapes(case):
    shapes = {"x": [BATCH, 1, 28, 28], "z": [BATCH, case.z_dim, 1, 1]}
    if case.uses_u:
        shapes["u"] = [BATCH, 1, 1, 1]
    return shapes


def fail(msg):
    print("bench_gan_torch.py: " + msg, file=sys.stderr)
    sys.exit(2)


def check(a):
    case = Case(a.case)
    try:
        tensors, _ = read_safetensors(a.init)
    except (OSError, ValueError, KeyError, TypeError) as err:
        fail("cannot read %s: %s" % (a.init, err))
    torch.manual_seed(0)
    G, D, opt_g, opt_d = build(case)

    missing, wrong = [], []
    for prefix, model in (("G.", G), ("D.", D)):
        for key, dst in model_tensors(model).items():
            src = tensors.get(prefix + key)
            if src is None:
                missing.append(prefix + key)
            elif list(src.shape) != list(dst.shape):
                wrong.append("%s%s %s (want %s)" % (prefix, key, list(src.shape), list(dst.shape)))
            else:
                with torch.no_grad():
                    dst.copy_(src)

    if a.iters is None:
        iters = 0
        while all(n in tensors for n in input_names(case, iters)):
            iters += 1
        if iters == 0:
            missing += [n for n in input_names(case, 0) if n not in tensors]
    else:
        iters = a.iters
        for k in range(iters):
            missing += [n for n in input_names(case, k) if n not in tensors]
    shapes = input_shapes(case)
    for k in range(iters):
        for n in input_names(case, k):
            if n in tensors and list(tensors[n].shape) != shapes[n.split(".")[0]]:
                wrong.append("%s %s (want %s)" % (n, list(tensors[n].shape), shapes[n.split(".")[0]]))
    if missing or wrong:
        fail("%s does not fit case %s:%s%s"
             % (a.init, a.case,
                "\n  missing: " + ", ".join(missing) if missing else "",
                "\n  wrong shape: " + "; ".join(wrong) if wrong else ""))

    for k in range(iters):
        u = tensors["u.%d" % k] if case.uses_u else None
        d_loss, g_loss, penalty = train_step(case, G, D, opt_g, opt_d,
                                             tensors["x.%d" % k], tensors["z.%d" % k], u, check=True)
        print("iter %d %.9g %.9g %.9g" % (k, d_loss.item(), g_loss.item(), penalty.item()))


def export_random(a):
    case = Case(a.case)
    torch.manual_seed(a.seed)
    G, D, _, _ = build(case)
    if a.d_scale != 1.0:
        with torch.no_grad():
            for p in D.parameters():
                p.mul_(a.d_scale)
    out = {}
    for prefix, model in (("G.", G), ("D.", D)):
        out.update({prefix + k: v for k, v in model_tensors(model).items()})
    for k in range(a.iters):
        out["x.%d" % k] = case.real_batch()
        out["z.%d" % k] = case.noise()
        if case.uses_u:
            out["u.%d" % k] = case.uniform()
    write_safetensors(a.out, out, {"case": a.case, "iters": a.iters, "seed": a.seed,
                                   "d_scale": repr(a.d_scale)})


def main(a):
    torch.set_num_threads(a.threads if a.cmd in ("bench", "factor") else 1)
    torch.set_num_interop_threads(1)
    {"bench": bench, "factor": factor, "check": check, "export-random": export_random}[a.cmd](a)


if __name__ == "__main__":
    main(ARGS)
