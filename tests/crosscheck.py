#!/usr/bin/python3
"""Compares mmgan's graph and autodiff results with PyTorch (float64).

Usage: /usr/bin/python3 tests/crosscheck.py build/crosscheck.bin

The file comes from tests/crosscheck.c (its header describes the format and
the quantities).  For each network it holds the weights, input and constants
mmgan used; this script rebuilds the network (definitions below mirror the C
ones, by name) in float64 PyTorch with those exact values and recomputes:

  out        forward output
  L          sum(out * r)
  gL.<w>     dL/dw for every weight w and the input x           (first order)
  P          mean_i (||d sum(out)/dx_i||_2 - 1)^2, norm sqrt(sum(gx^2) + 1e-12)
  gP.<w>     dP/dw                                              (second order)
  hv.<w>     d <v, dL/dx> / dw                                  (second order)
  t3.<w>     d <v2, hv.x> / dw                                  (third order)
  state1.<s> batch-norm running statistics after the run (PyTorch's update,
             unbiased variance)

and for the GAN loss API (mmgan.h 1.11-1.13), with formulas written from the
header's documentation (not from its implementation):

  loss_<kind>_<rel>[_<variant>]  mmgan_loss_d / mmgan_loss_g on a small conv
             critic: critic outputs, D.* and G.* (total, real, fake) and
             gD.<w> / gG.<w>, their totals' gradients in every weight and in
             both input batches x_real, x_fake
  gp_<points>_<norm>_<shape>_c<center>_<lo|hi>  mmgan_gradient_penalty: penalty,
             per-sample norm, points (REAL / FAKE; the random INTERPOLATE and
             DRAGAN points are instead checked to lie where the header says,
             and used as the reference's x^), gP.<w> (second order)
  ebgan_<sse|norm|mse>  energies, EBGAN D and G (with and without the
             pulling-away term), BEGAN D, their gradients, BEGAN's k update

Lines "<net>.check.<what>" check the test's own premises (hinges active for
some terms and not others, gradient norms on the intended side of the
center, ...) and count as passed or failed like the comparisons.

Criterion, per array: err = max|mmgan - torch| / max(max|torch|, 1e-6), and
the array passes when err <= 1e-4.  That is a relative error normalized by
the array's largest reference magnitude, so tiny entries of an array are held
to the array's scale, not to their own (float32 cannot resolve them better).
PyTorch is a reference only: the library never depends on it.
"""
import struct
import sys

TOL = 1e-4
FLOOR = 1e-6

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("crosscheck: PyTorch is not importable by %s; install Debian's python3-torch "
          "(apt-get install python3-torch) and run this with /usr/bin/python3" % sys.executable)
    print("total: 0 passed, 1 failed")
    sys.exit(1)

DT = torch.float64

# ------------------------------------------------------------------ file


def read_file(path):
    """Returns (records, errors, complete): name -> (shape, tensor), net -> message."""
    with open(path, "rb") as f:
        buf = f.read()
    if buf[:8] != b"MMGANXC1":
        raise ValueError("%s: not a crosscheck file" % path)
    pos = 8
    recs, errors = {}, {}

    def u32():
        nonlocal pos
        if pos + 4 > len(buf):
            raise EOFError
        v = struct.unpack_from("<I", buf, pos)[0]
        pos += 4
        return v

    def string():
        nonlocal pos
        n = u32()
        if pos + n > len(buf):
            raise EOFError
        s = buf[pos:pos + n].decode("utf-8", "replace")
        pos += n
        return s

    try:
        while True:
            if pos >= len(buf):
                raise EOFError
            kind = buf[pos:pos + 1]
            pos += 1
            if kind == b"Z":
                return recs, errors, True
            name = string()
            if kind == b"E":
                errors[name.rsplit(".", 1)[0]] = string()
            elif kind == b"T":
                ndim = u32()
                shape = tuple(u32() for _ in range(ndim))
                numel = 1
                for s in shape:
                    numel *= s
                if pos + 4 * numel > len(buf):
                    raise EOFError
                vals = struct.unpack_from("<%df" % numel, buf, pos)
                pos += 4 * numel
                recs[name] = (shape, torch.tensor(vals, dtype=DT).reshape(shape))
            else:
                raise ValueError("%s: bad record type %r at byte %d" % (path, kind, pos - 1))
    except EOFError:
        return recs, errors, False

# ------------------------------------------------------------------ ops with mmgan's semantics


def ps_dims(t):
    return tuple(range(1, t.dim()))


def sum_ps(t):
    return t.sum(dim=ps_dims(t), keepdim=True)


def mean_ps(t):
    return t.mean(dim=ps_dims(t), keepdim=True)


def max_abs_ps(t):
    # The derivative goes to the first element reaching the maximum, with its sign.
    a = t.reshape(t.shape[0], -1)
    idx = a.abs().argmax(dim=1, keepdim=True)
    m = torch.gather(a, 1, idx).abs()
    return m.reshape((t.shape[0],) + (1,) * (t.dim() - 1))


def softmax_ps(t, s):
    return torch.softmax(s * t.reshape(t.shape[0], -1), dim=1).reshape(t.shape)


def smooth_max_ps(t, s):
    return sum_ps(t * softmax_ps(t, s))


def sum_to(t, shape):
    lead = t.dim() - len(shape)
    if lead:
        t = t.sum(dim=tuple(range(lead)))
    dims = tuple(i for i, s in enumerate(shape) if s == 1 and t.shape[i] != 1)
    if dims:
        t = t.sum(dim=dims, keepdim=True)
    return t


def whole(t):  # mmgan_sum / mmgan_mean results have shape [1]
    return t.reshape(1)


def wgrad(x, gy, kh, kw, stride, pad):
    """Correlation of x [N,C,H,W] with gy [N,O,Ho,Wo] -> [O,C,kh,kw] (conv2d's weight gradient)."""
    n, c = x.shape[:2]
    o = gy.shape[1]
    cols = F.unfold(x, (kh, kw), padding=pad, stride=stride)  # [N, C*kh*kw, Ho*Wo]
    g = gy.reshape(n, o, -1)
    assert g.shape[2] == cols.shape[2], "wgrad: gy does not match the convolution's output size"
    return torch.einsum("nol,nkl->ok", g, cols).reshape(o, c, kh, kw)


def mm(a, b, ta, tb):
    return (a.t() if ta else a) @ (b.t() if tb else b)


class Net:
    """Access to the network's parameters, running statistics and constants."""

    def __init__(self, params, state, consts):
        self.params, self.state, self.consts = params, state, consts

    def p(self, name):
        return self.params[name]

    def s(self, name):
        return self.state[name]

    def c(self, name):
        return self.consts[name]

    def bn(self, t, g, b, rm, rv, momentum, eps, training):
        return batch_norm(t, self.s(rm), self.s(rv), self.p(g) if g else None,
                          self.p(b) if b else None, training, momentum, eps)

    def ln(self, t, g, b, eps):
        return layer_norm(t, self.p(g) if g else None, self.p(b) if b else None, eps)


# Batch and layer norm are written out from primitive ops, not taken from
# F.batch_norm / F.layer_norm: PyTorch's fused norms give wrong derivatives
# from the third order on (their double backward treats the saved mean and
# 1/std as constants; found by this script with PyTorch 1.13: the fused and
# written-out norms agree to the second order and differ at the third).
# self_check() verifies these against the fused ops up to the second order,
# where the fused ops are right.


def batch_norm(t, rm, rv, gamma, beta, training, momentum, eps):
    """mmgan_batch_norm: statistics over axes 0, 2, 3 (or 0), biased variance to
    normalize; in training, rm/rv are updated in place with the unbiased variance."""
    c = t.shape[1]
    dims = (0,) + tuple(range(2, t.dim()))
    shp = (1, c) + (1,) * (t.dim() - 2)
    if training:
        mean = t.mean(dim=dims, keepdim=True)
        var = ((t - mean) ** 2).mean(dim=dims, keepdim=True)
        count = t.numel() // c
        with torch.no_grad():
            rm.mul_(1.0 - momentum).add_(momentum * mean.reshape(c))
            rv.mul_(1.0 - momentum).add_(momentum * var.reshape(c) * count / (count - 1))
    else:
        mean, var = rm.reshape(shp), rv.reshape(shp)
    y = (t - mean) / torch.sqrt(var + eps)
    if gamma is not None:
        y = y * gamma.reshape(shp)
    if beta is not None:
        y = y + beta.reshape(shp)
    return y


def layer_norm(t, gamma, beta, eps):
    """mmgan_layer_norm: over every axis but the batch; gamma/beta have t.shape[1:]."""
    dims = ps_dims(t)
    mean = t.mean(dim=dims, keepdim=True)
    var = ((t - mean) ** 2).mean(dim=dims, keepdim=True)
    y = (t - mean) / torch.sqrt(var + eps)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y


def self_check():
    """Largest difference between the decomposed norms above and PyTorch's fused
    ones, for values, gradients and Hessian-vector products, and running stats."""
    gen = torch.Generator().manual_seed(7)
    worst = 0.0
    for shape in ((5, 4), (3, 4, 3, 2)):
        x0 = torch.randn(shape, dtype=DT, generator=gen)
        k = torch.randn(shape, dtype=DT, generator=gen)
        v = torch.randn(shape, dtype=DT, generator=gen)
        c = shape[1]
        g0 = torch.rand(c, dtype=DT, generator=gen) + 0.5
        b0 = torch.randn(c, dtype=DT, generator=gen)
        lg0 = torch.rand(shape[1:], dtype=DT, generator=gen) + 0.5
        lb0 = torch.randn(shape[1:], dtype=DT, generator=gen)
        rm0 = torch.randn(c, dtype=DT, generator=gen)
        rv0 = torch.rand(c, dtype=DT, generator=gen) + 0.5
        for training in (1, 0):
            pairs = []
            for fused in (True, False):
                x, g, b, lg, lb = [t.clone().requires_grad_() for t in (x0, g0, b0, lg0, lb0)]
                rm, rv = rm0.clone(), rv0.clone()
                if fused:
                    y = F.batch_norm(x, rm, rv, g, b, training=bool(training), momentum=0.1, eps=1e-5)
                    y = y + F.layer_norm(torch.tanh(x), shape[1:], lg, lb, 1e-5)
                else:
                    y = batch_norm(x, rm, rv, g, b, training, 0.1, 1e-5)
                    y = y + layer_norm(torch.tanh(x), lg, lb, 1e-5)
                wrt = [x, g, b, lg, lb]
                g1 = torch.autograd.grad((y * k).sum(), wrt, create_graph=True)
                g2 = torch.autograd.grad((g1[0] * v).sum(), wrt, allow_unused=True)
                g2 = [torch.zeros_like(w) if t is None else t for w, t in zip(wrt, g2)]
                pairs.append([y, rm, rv] + list(g1) + g2)
            for a, b_ in zip(*pairs):
                worst = max(worst, (a - b_).abs().max().item() / max(b_.abs().max().item(), 1.0))
    return worst


# ------------------------------------------------------------------ networks (mirror crosscheck.c)


# "u_<op>": x [4,5] -> h = linear(x, w, b) -> y = op(h) -> out = y * k
UNARY = {
    "relu": lambda h, n: F.relu(h),
    "leaky_relu": lambda h, n: F.leaky_relu(h, 0.2),
    "sigmoid": lambda h, n: torch.sigmoid(h),
    "tanh": lambda h, n: torch.tanh(h),
    "softplus": lambda h, n: F.softplus(h),
    "log_sigmoid": lambda h, n: F.logsigmoid(h),
    "exp": lambda h, n: torch.exp(h),
    "log": lambda h, n: torch.log(torch.sigmoid(h) + 0.5),
    "sqrt": lambda h, n: torch.sqrt(h * h + 0.25),
    "abs": lambda h, n: torch.abs(h),
    "square": lambda h, n: h * h,
    "maximum": lambda h, n: torch.where(h > 0.1, h, torch.full_like(h, 0.1)),
    "scale": lambda h, n: -1.5 * h,
    "affine": lambda h, n: 0.7 * h + 0.3,
    "add_row": lambda h, n: h + n.p("c"),
    "add_col": lambda h, n: n.p("c") + h,
    "add_scalar": lambda h, n: h + n.p("c"),
    "add_self": lambda h, n: h + h,
    "sub_row": lambda h, n: n.p("c") - h,
    "sub_col": lambda h, n: h - n.p("c"),
    "mul_row": lambda h, n: h * n.p("c"),
    "mul_col": lambda h, n: n.p("c") * h,
    "mul_self": lambda h, n: h * h,
    "div_row": lambda h, n: h / (n.p("c") ** 2 + 0.5),
    "div_col": lambda h, n: n.p("c") / (h * h + 0.5),
    "div_self": lambda h, n: (h * (h * h + 0.5)) / ((h * h + 0.5) * (h * h + 0.5)),
    "sum_to_row": lambda h, n: sum_to(h * h, (1, 6)),
    "sum_to_col": lambda h, n: sum_to(h * h, (4, 1)),
    "sum_to_1d": lambda h, n: sum_to(h * h, (6,)),
    "broadcast_row": lambda h, n: h * n.p("c").expand(4, 6),
    "broadcast_new": lambda h, n: h * n.p("c").expand(4, 6),
    "broadcast_3d": lambda h, n: (h * h).expand(2, 4, 6),
    "matmul_nn": lambda h, n: mm(h, n.p("m"), 0, 0),
    "matmul_nt": lambda h, n: mm(h, n.p("m"), 0, 1),
    "matmul_tn": lambda h, n: mm(n.p("m"), h, 1, 0),
    "matmul_tt": lambda h, n: mm(h, n.p("m"), 1, 1),
    "gram_tn": lambda h, n: mm(h, h, 1, 0),
    "gram_nt": lambda h, n: mm(h, h, 0, 1),
    "linear_nobias": lambda h, n: F.linear(torch.tanh(h), n.p("w2")),
    "linear_chain": lambda h, n: F.linear(torch.tanh(h), n.p("w2"), n.p("b2")),
    "bias_add": lambda h, n: h * h + n.p("c"),
    "sum": lambda h, n: whole((h * h).sum()),
    "mean": lambda h, n: whole((h * h).mean()),
    "sum_per_sample": lambda h, n: sum_ps(h * h),
    "mean_per_sample": lambda h, n: mean_ps(h * h),
    "max_abs_per_sample": lambda h, n: max_abs_ps(h),
    "max_abs_square": lambda h, n: max_abs_ps(h * h),
    "softmax": lambda h, n: softmax_ps(h, 1.3),
    "smooth_max1": lambda h, n: smooth_max_ps(h, 1.0),
    "smooth_max3": lambda h, n: smooth_max_ps(h, 3.0),
    "layer_norm": lambda h, n: n.ln(h, "g", "be", 1e-5),
    "layer_norm_plain": lambda h, n: n.ln(h, None, None, 1e-5),
    "layer_norm_gamma": lambda h, n: n.ln(h, "g", None, 1e-3),
    "batch_norm": lambda h, n: n.bn(h, "g", "be", "rm", "rv", 0.1, 1e-5, 1),
    "batch_norm_plain": lambda h, n: n.bn(h, None, None, "rm", "rv", 0.3, 1e-5, 1),
    "batch_norm_beta": lambda h, n: n.bn(h, None, "be", "rm", "rv", 0.1, 1e-3, 1),
    "batch_norm_eval": lambda h, n: n.bn(h, "g", "be", "rm", "rv", 0.1, 1e-5, 0),
    "batch_norm_eval_plain": lambda h, n: n.bn(h, None, None, "rm", "rv", 0.1, 1e-2, 0),
    "concat": lambda h, n: torch.cat([h * h, h[1:3]], 0),
    "slice": lambda h, n: (h * h)[1:3],
    "pad_batch": lambda h, n: torch.cat([h.new_zeros(1, 6), h * h, h.new_zeros(1, 6)], 0),
    "detach": lambda h, n: h + h.detach() * (h * h),
    "reshape_3d": lambda h, n: (h * h).reshape(4, 3, 2),
    "reshape_batch": lambda h, n: (h * h).reshape(8, 3),
    "flatten": lambda h, n: ((h.reshape(4, 2, 3, 1)) ** 2 + n.p("c").reshape(1, 2, 1, 1)).reshape(4, 6),
    "fill": lambda h, n: h * torch.full((1, 6), 0.5, dtype=DT),
    "constant": lambda h, n: (h * h) * n.c("c"),
}

# "i_<op>": x [2,3,7,7] -> y = op(x) -> out = y * k
IMAGE = {
    "conv_s1p0": lambda x, n: F.conv2d(x, n.p("w"), stride=1, padding=0),
    "conv_s2p1": lambda x, n: F.conv2d(x, n.p("w"), stride=2, padding=1),
    "conv_s3p2k4": lambda x, n: F.conv2d(x, n.p("w"), stride=3, padding=2),
    "conv_k1": lambda x, n: F.conv2d(x, n.p("w"), stride=1, padding=0),
    "conv_k2x3": lambda x, n: F.conv2d(x, n.p("w"), stride=2, padding=1),
    "conv_bias_tanh": lambda x, n: torch.tanh(F.conv2d(x, n.p("w"), n.p("b"), stride=1, padding=1)),
    "convt_s1p0": lambda x, n: F.conv_transpose2d(x, n.p("w"), stride=1, padding=0, output_padding=0),
    "convt_s2p1op1": lambda x, n: F.conv_transpose2d(x, n.p("w"), stride=2, padding=1, output_padding=1),
    "convt_s2p1k4": lambda x, n: F.conv_transpose2d(x, n.p("w"), stride=2, padding=1, output_padding=0),
    "convt_s3p1op2": lambda x, n: F.conv_transpose2d(x, n.p("w"), stride=3, padding=1, output_padding=2),
    "convt_k2x3": lambda x, n: F.conv_transpose2d(x, n.p("w"), stride=2, padding=0, output_padding=1),
    "convt_tanh": lambda x, n: torch.tanh(F.conv_transpose2d(x, n.p("w"), stride=2, padding=1)),
    "wgrad_s1p0": lambda x, n: wgrad(x, torch.tanh(F.conv2d(x, n.p("w"), stride=1, padding=0)), 3, 3, 1, 0),
    "wgrad_s2p1": lambda x, n: wgrad(x, F.conv2d(torch.tanh(x), n.p("w"), stride=2, padding=1), 3, 3, 2, 1),
    "wgrad_k2x4": lambda x, n: wgrad(x, F.conv2d(x, n.p("w"), stride=2, padding=1) ** 2, 2, 4, 2, 1),
    "bias_add": lambda x, n: (x + n.p("b").reshape(1, 3, 1, 1)) ** 2,
    "add_chan": lambda x, n: x * (x + n.p("c")),
    "mul_w": lambda x, n: (x * x) * n.p("c"),
    "div_sample": lambda x, n: x / (mean_ps(x * x) + 0.1),
    "batch_norm": lambda x, n: n.bn(x, "g", "be", "rm", "rv", 0.1, 1e-5, 1),
    "batch_norm_plain": lambda x, n: n.bn(x, None, None, "rm", "rv", 0.2, 1e-5, 1),
    "batch_norm_eval": lambda x, n: n.bn(x, "g", "be", "rm", "rv", 0.1, 1e-5, 0),
    "layer_norm": lambda x, n: n.ln(x, "g", "be", 1e-5),
    "layer_norm_plain": lambda x, n: n.ln(x, None, None, 1e-5),
    "sum_per_sample": lambda x, n: sum_ps(x * x),
    "mean_per_sample": lambda x, n: mean_ps(torch.tanh(x)),
    "max_abs_per_sample": lambda x, n: max_abs_ps(torch.tanh(x)),
    "softmax": lambda x, n: softmax_ps(x, 0.7),
    "smooth_max": lambda x, n: smooth_max_ps(x, 2.0),
    "sum": lambda x, n: whole(torch.tanh(x).sum()),
    "mean": lambda x, n: whole((x * x).mean()),
    "flatten": lambda x, n: (x * x).reshape(2, -1),
    "reshape": lambda x, n: (x * x).reshape(2, 7, 3, 7),
    "concat": lambda x, n: torch.cat([x[1:2], x * x], 0),
    "pad_batch": lambda x, n: torch.cat([x.new_zeros(2, 3, 7, 7), x * x, x.new_zeros(1, 3, 7, 7)], 0),
    "sum_to": lambda x, n: sum_to(x * x, (1, 3, 1, 7)),
    "broadcast": lambda x, n: x * n.p("c").expand(2, 3, 7, 7),
}


def net_dense(x, n):
    p = n.p
    h = F.leaky_relu(F.linear(x, p("w1"), p("b1")), 0.2)
    h = n.ln(h, "ln_g", "ln_b", 1e-5)
    h = torch.tanh(F.linear(h, p("w2"), p("b2")))
    h = n.bn(h, "bn_g", "bn_b", "rm", "rv", 0.1, 1e-5, 1)
    h3 = F.linear(h, p("w3"), p("b3"))
    s = torch.sigmoid(h3)
    t1 = torch.log(s + 0.5)
    t2 = torch.sqrt(h3 * h3 + 0.25)
    a = t1 * p("cv")
    b = F.softplus(h3) / (t2 + 0.5)
    c = F.logsigmoid(h3) - torch.exp(0.5 * h3)
    d = torch.abs(h3) * torch.where(h3 > 0.1, h3, torch.full_like(h3, 0.1)) + F.relu(h3)
    e = (a + b) + (c + d)
    m1, m2, m3, m4 = mean_ps(e), sum_ps(e), max_abs_ps(e), smooth_max_ps(e, 1.0)
    sm = softmax_ps(e, 1.5)
    f = sm * e - m1
    f = f + m3 * m4
    f = f / (m2 * m2 + 1.0)
    f = torch.cat([f[2:5], f[0:2]], 0)
    f = f.reshape(5, 3, 1, 1) + p("fb").reshape(1, 3, 1, 1)
    f = f.reshape(5, 3)
    return n.bn(f, "bn2_g", "bn2_b", "rm2", "rv2", 0.1, 1e-5, 0)


def net_critic(x, n):
    p = n.p
    h = F.conv2d(x, p("w1"), stride=2, padding=1)
    h = F.leaky_relu(h + p("b1").reshape(1, -1, 1, 1), 0.2)
    h = F.conv2d(h, p("w2"), stride=1, padding=0)
    h = n.bn(h, "bn_g", "bn_b", "rm", "rv", 0.1, 1e-5, 1)
    h = F.leaky_relu(h, 0.2)
    h = F.conv2d(h, p("w3"), stride=1, padding=1)
    h = n.ln(h, "ln_g", "ln_b", 1e-5)
    h = F.leaky_relu(h, 0.2)
    return F.linear(h.reshape(h.shape[0], -1), p("w4"), p("b4"))


def net_critic_ln(x, n):
    p = n.p
    h = F.conv2d(x, p("w1"), stride=2, padding=1)
    h = F.leaky_relu(h + p("b1").reshape(1, -1, 1, 1), 0.2)
    h = F.conv2d(h, p("w2"), stride=2, padding=1)
    h = n.ln(h, "ln_g", "ln_b", 1e-5)
    h = F.leaky_relu(h, 0.2)
    return F.linear(h.reshape(h.shape[0], -1), p("w3"), p("b3"))


def net_gen(z, n):
    p = n.p
    h = F.relu(F.linear(z, p("w1"), p("b1"))).reshape(3, 4, 3, 3)
    h = F.conv_transpose2d(h, p("wt1"), stride=2, padding=1, output_padding=0)
    h = F.relu(n.bn(h, "bn_g", "bn_b", "rm", "rv", 0.1, 1e-5, 1))
    h = F.conv_transpose2d(h, p("wt2"), stride=2, padding=1, output_padding=1)
    return torch.tanh(h + p("bt2").reshape(1, -1, 1, 1))


def make_unary(op):
    return lambda x, n: op(F.linear(x, n.p("w"), n.params.get("b")), n) * n.c("k")


def make_image(op):
    return lambda x, n: op(x, n) * n.c("k")


NETS = {"dense": net_dense, "critic": net_critic, "critic_ln": net_critic_ln, "gen": net_gen}
NETS.update({"u_" + k: make_unary(v) for k, v in UNARY.items()})
NETS.update({"i_" + k: make_image(v) for k, v in IMAGE.items()})

# ------------------------------------------------------------------ reference computation


def grads(y, wrt, create):
    """d sum(y) / d wrt, zeros where y does not depend on an input."""
    if not y.requires_grad:
        return [torch.zeros_like(w) for w in wrt]
    g = torch.autograd.grad(y, wrt, create_graph=create, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(w) if gi is None else gi for w, gi in zip(wrt, g)]


def reference(name, fields):
    """fields: kind -> {name: tensor} for one network.  Returns [(label, tensor)]."""
    params = {k: v.clone().requires_grad_() for k, v in fields.get("param", {}).items()}
    state = {k: v.clone() for k, v in fields.get("state0", {}).items()}
    consts = fields.get("const", {})
    x = fields["input"]["x"].clone().requires_grad_()
    n = Net(params, state, consts)
    pnames = list(params)
    wrt = [params[k] for k in pnames] + [x]
    wnames = pnames + ["x"]

    out = NETS[name](x, n)
    L = whole((out * n.c("r")).sum())
    gL = grads(L, wrt, True)
    gx = grads(out.sum(), [x], True)[0]
    nrm = torch.sqrt(sum_ps(gx * gx) + 1e-12)
    P = whole(((nrm - 1.0) ** 2).mean())
    gP = grads(P, wrt, True)
    hv = grads((gL[-1] * n.c("v")).sum(), wrt, True)
    t3 = grads((hv[-1] * n.c("v2")).sum(), wrt, False)

    res = [("out", out), ("L", L), ("P", P)]
    for q, g in (("gL", gL), ("gP", gP), ("hv", hv), ("t3", t3)):
        res += [("%s.%s" % (q, w), gi) for w, gi in zip(wnames, g)]
    res += [("state1.%s" % k, v) for k, v in state.items()]
    return res


# ------------------------------------------------------------------ GAN losses, penalties, EBGAN
# The networks of mmgan.h 1.11-1.13 (see crosscheck.c: loss_*, gp_*, ebgan_*).
# The formulas below are written from the header's documentation of those
# sections, not from the implementation.


def critic1(x, p):
    """x [B,1,6,6] -> conv(3 ch, 3x3, stride 2, pad 1) + bias -> leaky_relu(0.2) -> linear -> [B,1]."""
    h = F.leaky_relu(F.conv2d(x, p["w1"], p["b1"], stride=2, padding=1), 0.2)
    return F.linear(h.reshape(h.shape[0], -1), p["w2"], p.get("b2"))


def critic1_wrt(p, xr, xf):
    """(names, tensors) of the critic's weights (b2 only where the net has it) and both inputs."""
    names = [k for k in ("w1", "b1", "w2", "b2") if k in p]
    return names + ["x_real", "x_fake"], [p[k] for k in names] + [xr, xf]

LOSS_KINDS = ("sgan", "lsgan", "hinge", "wgan")
LOSS_RELS = ("none", "average", "centred", "paired", "all_pairs")
# name -> (kind, rel, saturating, a, b, c); fake batch 4 for names ending in _b4
LOSS_NETS = {"loss_%s_%s" % (k, r): (k, r, 0, 0.0, 1.0, 1.0) for k in LOSS_KINDS for r in LOSS_RELS}
LOSS_NETS.update({  # crosscheck.c's loss_extra
    "loss_sgan_none_saturating": ("sgan", "none", 1, 0.0, 1.0, 1.0),
    "loss_lsgan_none_m111": ("lsgan", "none", 0, -1.0, 1.0, 1.0),
    "loss_lsgan_none_011": ("lsgan", "none", 0, 0.0, 1.0, 1.0),
    "loss_lsgan_none_odd": ("lsgan", "none", 0, 0.5, -0.3, 0.2),
    "loss_lsgan_average_odd": ("lsgan", "average", 0, 0.5, -0.3, 0.2),
    "loss_lsgan_paired_odd": ("lsgan", "paired", 0, 0.5, -0.3, 0.2),
    "loss_sgan_all_pairs_b4": ("sgan", "all_pairs", 0, 0.0, 1.0, 1.0),
    "loss_hinge_centred_b4": ("hinge", "centred", 0, 0.0, 1.0, 1.0),
    "loss_lsgan_average_b4": ("lsgan", "average", 0, 0.0, 1.0, 1.0),
    "loss_wgan_none_b4": ("wgan", "none", 0, 0.0, 1.0, 1.0),
})


def gan_loss(spec, dr, df, gside, hinge_args):
    """(real, fake) parts of the D (gside 0) or G side, as documented in mmgan.h 1.11.
    dr [Br], df [Bf] are the critic's scores; hinge_args collects relu arguments."""
    kind, rel, sat, a, b, c = spec

    def relu(t):
        hinge_args.append(t.detach().reshape(-1))
        return F.relu(t)

    def phi_r(t):  # D-side term of a real score; targets +-1 for LSGAN
        return {"sgan": lambda: F.softplus(-t), "lsgan": lambda: (t - 1.0) ** 2,
                "hinge": lambda: relu(1.0 - t), "wgan": lambda: -t}[kind]()

    def phi_f(t):
        return phi_r(-t)

    zero = dr.new_zeros(())
    if rel == "none":
        if not gside:
            if kind == "sgan":
                return F.softplus(-dr).mean(), F.softplus(df).mean()
            if kind == "lsgan":
                return ((dr - b) ** 2).mean(), ((df - a) ** 2).mean()
            if kind == "hinge":
                return relu(1.0 - dr).mean(), relu(1.0 + df).mean()
            return -dr.mean(), df.mean()  # WGAN: mean d_f - mean d_r
        if kind == "sgan":
            return zero, (-F.softplus(df).mean() if sat else F.softplus(-df).mean())
        if kind == "lsgan":
            return zero, ((df - c) ** 2).mean()
        return zero, -df.mean()  # hinge, WGAN
    if rel in ("average", "centred"):
        if rel == "average":
            mr, mf = df.mean(), dr.mean()  # d_r is compared with mean d_f, d_f with mean d_r
        else:
            mr = mf = (dr.mean() + df.mean()) / 2
        if not gside:
            return phi_r(dr - mr).mean(), phi_f(df - mf).mean()
        return phi_f(dr - mr).mean(), phi_r(df - mf).mean()
    if rel == "paired":
        d = dr - df  # d_r,i - d_f,i
    else:
        d = dr[:, None] - df[None, :]  # all B_r x B_f pairs (i, j)
    return (phi_r(-d) if gside else phi_r(d)).mean(), zero  # terms do not separate: real = total


def reference_loss(net, fields):
    spec = LOSS_NETS[net]
    p = {k: v.clone().requires_grad_() for k, v in fields["param"].items()}
    xr = fields["input"]["x_real"].clone().requires_grad_()
    xf = fields["input"]["x_fake"].clone().requires_grad_()
    wnames, wrt = critic1_wrt(p, xr, xf)
    dr, df = critic1(xr, p), critic1(xf, p)
    res = [("d_real", dr), ("d_fake", df)]
    hinge_args = []
    for side, gside in (("D", 0), ("G", 1)):
        real, fake = gan_loss(spec, dr.reshape(-1), df.reshape(-1), gside, hinge_args)
        real, fake = whole(real), whole(fake)
        total = real + fake
        res += [(side + ".total", total), (side + ".real", real), (side + ".fake", fake)]
        res += [("g%s.%s" % (side, w), gi) for w, gi in zip(wnames, grads(total, wrt, False))]
    checks = []
    if hinge_args:  # the hinges must be active for some terms and not for others
        t = torch.cat(hinge_args)
        checks.append(("hinge_mixed", bool((t > 0).any() and (t < 0).any()),
                       "%d of %d relu arguments > 0" % (int((t > 0).sum()), t.numel())))
    return res, checks


GP_POINTS = ("interpolate", "real", "fake", "dragan")
GP_NORMS = ("l2", "l1", "linf", "smax", "signed")
GP_SHAPES = ("squared", "hinge", "onesided", "abs")


def gp_spec(net):
    """gp_<points>_<norm>_<shape>_c<center>_<level> -> spec as crosscheck.c's run_gp sets it."""
    _, points, norm, shape, center, level = net.split("_")
    hi = level == "hi"
    return dict(points=points, norm=norm, shape=shape, center=float(center[1:]), level=level,
                lam=10.0, s=3.0 if hi else 1.0, c=1.5 if hi else 0.5)


def gp_norm(g, norm, s):
    """Per-sample norm of g [B, ...] as documented in mmgan.h 1.12, shape [B]."""
    g = g.reshape(g.shape[0], -1)
    if norm == "l2":
        return torch.sqrt((g * g).sum(1) + 1e-12)
    if norm == "l1":
        return g.abs().sum(1)
    if norm == "linf":  # subgradient at the first maximum: argmax picks the first
        return torch.gather(g.abs(), 1, g.abs().argmax(1, keepdim=True)).reshape(-1)
    if norm == "signed":
        return torch.gather(g, 1, g.argmax(1, keepdim=True)).reshape(-1)
    a = g.abs()  # smooth max of |g|
    e = torch.exp(s * a)
    return (a * e).sum(1) / e.sum(1)


# norm -> [does some sample's largest |g| have a negative sign], one entry per net
GP_NEGATIVE_EXTREMES = {}


def gp_extremes_check():
    """(label, ok, detail): LINF's subgradient sign and SIGNED_MAX vs LINF are exercised,
    i.e. most LINF / SIGNED_MAX nets have a sample whose largest |g| is negative."""
    parts = ["%s %d of %d nets" % (k, sum(v), len(v)) for k, v in sorted(GP_NEGATIVE_EXTREMES.items())]
    ok = all(2 * sum(v) >= len(v) for v in GP_NEGATIVE_EXTREMES.values())
    return "gp.check.negative_extremes", ok, "a sample's largest |g| is negative in: " + ", ".join(parts)


def reference_gp(net, fields):
    sp = gp_spec(net)
    p = {k: v.clone().requires_grad_() for k, v in fields["param"].items()}
    xr = fields["input"]["x_real"].clone().requires_grad_()
    xf = fields["input"]["x_fake"].clone().requires_grad_()
    pts = fields.get("points", {}).get("")
    checks = []
    # The points are constants: x_real and x_fake enter detached.
    if sp["points"] == "real":
        xh = xr.detach().clone()
    elif sp["points"] == "fake":
        xh = xf.detach().clone()
    else:
        if pts is None or tuple(pts.shape) != tuple(xr.shape):
            raise ValueError("points missing or of the wrong shape")
        xh = pts.clone()
        r, f, h = xr.detach().reshape(len(xr), -1), xf.detach().reshape(len(xf), -1), pts.reshape(len(pts), -1)
        scale = max(h.abs().max().item(), 1.0)
        if sp["points"] == "interpolate":
            # x^ = u x_r + (1 - u) x_f, one u in [0, 1) per sample
            d, e = r - f, h - f
            u = (d * e).sum(1) / (d * d).sum(1)
            resid = (e - u[:, None] * d).abs().max().item() / scale
            ok = resid <= 1e-6 and bool((u >= 0).all()) and bool((u < 1).all()) and u.std().item() > 0.05
            checks.append(("points_on_segments", ok, "off-segment %.1e, u = %s" % (
                resid, " ".join("%.3f" % v for v in u.tolist()))))
        else:
            # x^ = x_r + u c std(x_r) U[0,1): 0 <= x^ - x_r <= c std(x_r) elementwise
            bound = sp["c"] * r.std(unbiased=False).item()
            d = h - r
            lo, hi = d.min().item() / bound, d.max().item() / bound
            ok = lo >= -1e-6 and hi <= 1 + 1e-6 and hi > 0.1
            checks.append(("points_dragan_range", ok, "(x^ - x_r) / (c std x_r) in [%.3g, %.3g]" % (lo, hi)))
    xh.requires_grad_()
    out = critic1(xh, p)
    g = torch.autograd.grad(out.sum(), xh, create_graph=True)[0]
    nrm = gp_norm(g, sp["norm"], sp["s"])
    t = nrm - sp["center"]
    t = {"squared": lambda: t * t, "hinge": lambda: F.relu(t),
         "onesided": lambda: F.relu(t) ** 2, "abs": lambda: t.abs()}[sp["shape"]]()
    pen = whole(sp["lam"] * t.mean())
    wnames, wrt = critic1_wrt(p, xr, xf)
    res = [("penalty", pen), ("norm", nrm.reshape((len(xh),) + (1,) * (xh.dim() - 1)))]
    if sp["points"] in ("real", "fake"):
        res.append(("points", xh))
    res += [("gP.%s" % w, gi) for w, gi in zip(wnames, grads(pen, wrt, False))]
    if sp["norm"] in ("linf", "signed"):  # counted once over all nets by gp_extremes_check()
        gf = g.detach().reshape(len(g), -1)
        GP_NEGATIVE_EXTREMES.setdefault(sp["norm"], []).append(
            bool((torch.gather(gf, 1, gf.abs().argmax(1, keepdim=True)) < 0).any()))
    if sp["center"] == 1.0:  # the level is what its name says (so hinges are not trivially 0)
        lo, hi = nrm.min().item(), nrm.max().item()
        ok = hi < 1.0 if sp["level"] == "lo" else lo > 1.0
        checks.append(("norms_" + sp["level"], ok, "norms in [%.3g, %.3g]" % (lo, hi)))
    return res, checks


EBGAN_KINDS = ("sse", "norm", "mse")
EBGAN_MARGIN = {"sse": 6.0, "norm": 2.5, "mse": 0.4}   # crosscheck.c's ebgan_margin
EBGAN_PT_WEIGHT = 0.7
BEGAN_K, BEGAN_GAMMA, BEGAN_LAMBDA_K = 0.3, 0.5, 0.01
EBGAN_WRT = ["we", "be", "wd", "bd", "x_real", "x_fake"]


def energy(x, recon, kind):
    """Per-sample reconstruction energy [B, 1] (mmgan.h 1.13)."""
    sse = ((recon - x) ** 2).sum(1, keepdim=True)
    return {"sse": sse, "norm": torch.sqrt(sse + 1e-12), "mse": sse / x.shape[1]}[kind]


def pulling_away(s):
    """Mean over i != j of cos^2(s_i, s_j)."""
    s = s.reshape(s.shape[0], -1)
    b = s.shape[0]
    cos = (s @ s.t()) / (s.norm(dim=1)[:, None] * s.norm(dim=1)[None, :])
    off = ~torch.eye(b, dtype=torch.bool)
    return (cos[off] ** 2).sum() / (b * (b - 1))


def reference_ebgan(net, fields):
    kind = net.split("_", 1)[1]
    p = {k: v.clone().requires_grad_() for k, v in fields["param"].items()}
    xr = fields["input"]["x_real"].clone().requires_grad_()
    xf = fields["input"]["x_fake"].clone().requires_grad_()
    wrt = [p[k] for k in EBGAN_WRT[:4]] + [xr, xf]

    def ae(x):
        h = F.relu(F.linear(x, p["we"], p["be"]))
        return h, F.linear(h, p["wd"], p["bd"])

    hr, rr = ae(xr)
    hf, rf = ae(xf)
    er, ef = energy(xr, rr, kind), energy(xf, rf, kind)
    m = EBGAN_MARGIN[kind]
    pt = whole(pulling_away(hf))
    zero = whole(er.new_zeros(()))
    parts = {
        "D": (whole(er.mean()), whole(F.relu(m - ef).mean())),        # EBGAN critic
        "G": (EBGAN_PT_WEIGHT * pt, whole(ef.mean())),                # EBGAN G with PT
        "G0": (zero, whole(ef.mean())),                               # without PT
        "B": (whole(er.mean()), whole(-BEGAN_K * ef.mean())),         # BEGAN critic
    }
    res = [("e_real", er), ("e_fake", ef), ("embed", hf), ("pt", pt)]
    for side, (real, fake) in parts.items():
        total = real + fake
        res += [(side + ".total", total), (side + ".real", real), (side + ".fake", fake)]
        res += [("g%s.%s" % (side, w), gi) for w, gi in zip(EBGAN_WRT, grads(total, wrt, False))]
    # BEGAN's update after the step, from the mean energies of this run
    mr, mf = er.mean().item(), ef.mean().item()
    bal = BEGAN_GAMMA * mr - mf
    k1 = min(max(BEGAN_K + BEGAN_LAMBDA_K * bal, 0.0), 1.0)
    res += [("upd.k", torch.tensor([k1], dtype=DT)), ("upd.M", torch.tensor([mr + abs(bal)], dtype=DT))]
    lo, hi = ef.min().item(), ef.max().item()
    checks = [("margin_inside", lo < m < hi, "margin %g, fake energies in [%.3g, %.3g]" % (m, lo, hi)),
              ("began_k_unclamped", 0.0 < k1 < 1.0, "k: %g -> %.6g" % (BEGAN_K, k1))]
    return res, checks


def reference_any(net, fields):
    """[(label, tensor)] to compare and [(label, ok, detail)] checks of the test's own premises."""
    if net.startswith("loss_"):
        return reference_loss(net, fields)
    if net.startswith("gp_"):
        return reference_gp(net, fields)
    if net.startswith("ebgan_"):
        return reference_ebgan(net, fields)
    return reference(net, fields), []


def known(net):
    if net.startswith("gp_"):
        try:
            sp = gp_spec(net)
        except ValueError:
            return False
        return sp["points"] in GP_POINTS and sp["norm"] in GP_NORMS and sp["shape"] in GP_SHAPES
    if net.startswith("ebgan_"):
        return net.split("_", 1)[1] in EBGAN_KINDS
    return net in NETS or net in LOSS_NETS


def shape_str(s):
    return "[" + "x".join(str(d) for d in s) + "]"


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "build/crosscheck.bin"
    torch.set_num_threads(1)
    try:
        recs, errors, complete = read_file(path)
    except (OSError, ValueError) as e:
        print("crosscheck: %s" % e)
        print("total: 0 passed, 1 failed")
        return 1

    # Group by network, keeping the file's order.
    nets = {}
    for full, (shape, t) in recs.items():
        net, rest = full.split(".", 1)
        kind, _, field = rest.partition(".")
        nets.setdefault(net, {}).setdefault(kind, {})[field] = t
    order = list(dict.fromkeys([r.split(".", 1)[0] for r in recs] + list(errors)))

    passed = failed = 0
    worst = (0.0, "")
    sc = self_check()
    ok = sc <= 1e-10
    print("%s reference self-check: decomposed vs fused PyTorch norms, orders 0-2: diff %.2e"
          % ("ok  " if ok else "FAIL", sc))
    passed, failed = (1, 0) if ok else (0, 1)
    for net in order:
        if net in errors:
            print("FAIL %s: mmgan could not build or run it: %s" % (net, errors[net]))
            failed += 1
            continue
        fields = nets[net]
        if not known(net):
            print("FAIL %s: no PyTorch definition in crosscheck.py" % net)
            failed += 1
            continue
        if not set(fields) - {"param", "input", "const", "state0"}:
            print("FAIL %s: incomplete records (did crosscheck crash?)" % net)
            failed += 1
            continue
        try:
            ref, checks = reference_any(net, fields)
        except Exception as e:  # a definition mismatch: report, keep going
            print("FAIL %s: PyTorch reference failed: %s: %s" % (net, type(e).__name__, e))
            failed += 1
            continue
        for label, ok, detail in checks:
            passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
            print("%s %-36s %s" % ("ok  " if ok else "FAIL", "%s.check.%s" % (net, label), detail))
        for label, r in ref:
            full = "%s.%s" % (net, label)
            kind, _, field = label.partition(".")
            got = fields.get(kind, {}).get(field) if field else fields.get(kind, {}).get("")
            r = r.detach()
            if got is None:
                print("FAIL %-36s missing from the mmgan output" % full)
                failed += 1
                continue
            if tuple(got.shape) != tuple(r.shape):
                print("FAIL %-36s shape %s, PyTorch %s" % (full, shape_str(got.shape), shape_str(r.shape)))
                failed += 1
                continue
            if got.numel() == 0:
                err = 0.0
            elif not torch.isfinite(got).all():
                err = float("inf")
            else:
                scale = max(r.abs().max().item(), FLOOR)
                err = (got - r).abs().max().item() / scale
            ok = err <= TOL
            if ok:
                passed += 1
            else:
                failed += 1
            if err > worst[0] and ok:
                worst = (err, full)
            line = "%s %-36s %-13s err %.2e" % ("ok  " if ok else "FAIL", full, shape_str(got.shape), err)
            if got.numel() and r.abs().max().item() == 0.0:
                line += "  (reference is exactly 0)"
            if not ok:
                i = int((got - r).abs().reshape(-1).nan_to_num(float("inf")).argmax())
                line += "  (worst at flat index %d: mmgan %.8g, PyTorch %.8g; max|PyTorch| %.4g)" % (
                    i, got.reshape(-1)[i].item(), r.reshape(-1)[i].item(), r.abs().max().item())
            print(line)
    if GP_NEGATIVE_EXTREMES:
        label, ok, detail = gp_extremes_check()
        passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
        print("%s %-36s %s" % ("ok  " if ok else "FAIL", label, detail))
    if not complete:
        print("FAIL %s is truncated (did crosscheck crash?)" % path)
        failed += 1
    print("largest passing error: %.2e (%s); criterion max|mmgan - torch| / max(max|torch|, %g) <= %g"
          % (worst[0], worst[1], FLOOR, TOL))
    print("total: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
