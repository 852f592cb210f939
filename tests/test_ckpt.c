/* Checkpoints: exact round trips (bit patterns included), a training run
 * resumed from a checkpoint equal bit for bit to an uninterrupted one,
 * strict validation of malformed files, random corruption.  With
 * "--writer PATH" it saves checkpoints in a loop for the SIGKILL test
 * (tests/crash_ckpt.sh); with "--check PATH" it validates one. */
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include "harness.h"
#include <limits.h>
#include <stdlib.h>

static mmgan_ctx *ctx;
#define S(...) (const int[]){__VA_ARGS__}

static void test_round_trip(void)
{
    mmgan_ckpt *ck = mmgan_ckpt_new(ctx), *back;
    float a[12], b[5], odd[6] = {-0.0f, 1e-45f, 3.4e38f, 0, 0, -1.5f};
    unsigned char *buf;
    size_t n;
    uint32_t u;
    int i, same = 1;
    u = 0x7f800000u; memcpy(&odd[3], &u, 4);       /* inf */
    u = 0x7fc01234u; memcpy(&odd[4], &u, 4);       /* a NaN payload */
    for (i = 0; i < 12; i++) a[i] = i * 0.5f - 3.0f;
    for (i = 0; i < 5; i++) b[i] = 1.0f / (float)(i + 1);
    CHECK(mmgan_ckpt_put(ck, "a", 2, S(3, 4), a) == MMGAN_OK, "put a");
    CHECK(mmgan_ckpt_put(ck, "b", 1, S(5), b) == MMGAN_OK, "put b");
    CHECK(mmgan_ckpt_put(ck, "odd.values", 3, S(1, 2, 3), odd) == MMGAN_OK, "put odd");
    CHECK(mmgan_ckpt_put_meta(ck, "step", "42") == MMGAN_OK, "meta");
    CHECK(mmgan_ckpt_put(ck, "a", 1, S(1), a) == MMGAN_ERR_INVALID, "duplicate name refused");
    CHECK(mmgan_ckpt_put(ck, "bad\"name", 1, S(1), a) == MMGAN_ERR_INVALID, "quote in a name refused");
    CHECK(mmgan_ckpt_encode(ck, &buf, &n) == MMGAN_OK && n % 4 == 0, "encode");
    CHECK(((buf[0] | buf[1] << 8) + 8) % 8 == 0, "data 8-byte aligned");
    back = mmgan_ckpt_decode(ctx, buf, n);
    CHECK(back && mmgan_ckpt_count(back) == 3, "decode: %s", mmgan_ctx_error(ctx));
    if (back) {
        const float *ga = mmgan_ckpt_get(back, "a", 2, S(3, 4)), *go = mmgan_ckpt_get(back, "odd.values", 3, S(1, 2, 3));
        same = ga && go && memcmp(ga, a, sizeof a) == 0 && memcmp(go, odd, sizeof odd) == 0;
        CHECK(same, "values and bit patterns survive");
        CHECK(mmgan_ckpt_get(back, "a", 2, S(4, 3)) == NULL && strstr(mmgan_ctx_error(ctx), "[3, 4]"),
              "shape mismatch named: %s", mmgan_ctx_error(ctx));
        CHECK(mmgan_ckpt_get(back, "c", 1, S(1)) == NULL, "missing tensor");
        CHECK(mmgan_ckpt_get_meta(back, "step") && !strcmp(mmgan_ckpt_get_meta(back, "step"), "42"), "metadata");
        mmgan_ckpt_free(back);
    }
#ifndef MMGAN_NO_STDIO
    /* Kept for make crosscheck's Python reader (struct + json only). */
    {
        mmgan_ckpt *py = mmgan_ckpt_new(ctx);
        char path[600];
        mmgan_ckpt_put(py, "a", 2, S(3, 4), a);
        mmgan_ckpt_put(py, "b", 1, S(5), b);
        mmgan_ckpt_put_meta(py, "step", "42");
        CHECK(mmgan_ckpt_save(py, test_path(path, sizeof path, "test_ckpt.safetensors")) == MMGAN_OK, "save: %s",
              mmgan_ctx_error(ctx));
        mmgan_ckpt_free(py);
    }
#endif
    mmgan_free(ctx, buf);
    mmgan_ckpt_free(ck);
}

/* Malformed headers, each refused with a message. */
static void test_malformed(void)
{
    static const char *headers[] = {
        "not json at all!",
        "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,8]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}xx",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}",
    };
    unsigned char buf[512];
    int i;
    for (i = 0; i < (int)(sizeof headers / sizeof headers[0]); i++) {
        size_t hl = strlen(headers[i]), k;
        mmgan_ckpt *ck;
        for (k = 0; k < 8; k++) buf[k] = (unsigned char)(hl >> (8 * k));
        memcpy(buf + 8, headers[i], hl);
        memset(buf + 8 + hl, 0, 8);     /* 8 bytes of data */
        ck = mmgan_ckpt_decode(ctx, buf, 8 + hl + 8);
        CHECK(ck == NULL && strstr(mmgan_ctx_error(ctx), "checkpoint"), "malformed header %d accepted: %s", i, headers[i]);
        mmgan_ckpt_free(ck);
    }
    buf[0] = 0xff; buf[7] = 0x7f;
    CHECK(mmgan_ckpt_decode(ctx, buf, 64) == NULL, "header length beyond the file");
    CHECK(mmgan_ckpt_decode(ctx, buf, 5) == NULL, "file shorter than 8 bytes");
    mmgan_ctx_clear_error(ctx);
}

static void test_corruption(void)
{
    mmgan_ckpt *ck = mmgan_ckpt_new(ctx);
    mmgan_rng rng;
    float v[40];
    unsigned char *buf, *copy;
    size_t n;
    int t, k;
    mmgan_rng_seed(&rng, 4, 4);
    mmgan_rng_fill_normal(&rng, v, 40, 0, 1);
    mmgan_ckpt_put(ck, "w", 2, S(5, 8), v);
    mmgan_ckpt_put_meta(ck, "note", "corruption test");
    mmgan_ckpt_encode(ck, &buf, &n);
    copy = (unsigned char *)malloc(n);
    for (t = 0; t < 400; t++) {
        mmgan_ckpt *c2;
        memcpy(copy, buf, n);
        for (k = 0; k < 1 + t % 3; k++) copy[mmgan_rng_below(&rng, (uint32_t)(t % 2 ? n : 200))] ^= (unsigned char)(1 + mmgan_rng_below(&rng, 255));
        c2 = mmgan_ckpt_decode(ctx, copy, n - (size_t)(t % 5 == 0 ? mmgan_rng_below(&rng, (uint32_t)n) : 0));
        mmgan_ckpt_free(c2);   /* any outcome but a crash is fine here (a flip in a header's spaces is harmless) */
    }
    CHECK(1, "400 corrupted checkpoints decoded without a crash");
    /* Every byte of the data section, flipped in turn, is caught by the
     * data's CRC-32 (in its metadata, mmgan.data_crc32): a flipped bit of a
     * weight had loaded as it was. */
    {
        const size_t hl = 8 + (size_t)(buf[0] | buf[1] << 8), d0 = hl;
        int caught = 0;
        size_t b;
        CHECK(n == hl + 160, "40 floats after the header (%lu bytes in all)", (unsigned long)n);
        for (b = d0; b < n; b++) {
            mmgan_ckpt *c2;
            memcpy(copy, buf, n);
            copy[b] ^= (unsigned char)(1u << (b % 8));
            c2 = mmgan_ckpt_decode(ctx, copy, n);
            caught += !c2 && strstr(mmgan_ctx_error(ctx), "CRC-32") != NULL;
            mmgan_ckpt_free(c2);
        }
        CHECK(caught == 160, "%d of 160 flipped data bytes caught", caught);
        /* the value itself checked: 8 hex digits */
        memcpy(copy, buf, n);
        {
            char *at = strstr((char *)copy + 8, "mmgan.data_crc32\":\"");
            mmgan_ckpt *c2;
            CHECK(at != NULL, "the CRC in the header");
            if (at) {
                at[19] = 'x';
                c2 = mmgan_ckpt_decode(ctx, copy, n);
                CHECK(!c2 && strstr(mmgan_ctx_error(ctx), "8 hex digits"), "a CRC that is not hex: %s", mmgan_ctx_error(ctx));
                mmgan_ckpt_free(c2);
                /* without the key (a file PyTorch wrote): read, unchecked */
                memcpy(at, "mmgan.other_note", 16);
                c2 = mmgan_ckpt_decode(ctx, copy, n);
                CHECK(c2 && mmgan_ckpt_get(c2, "w", 2, S(5, 8)) && mmgan_ckpt_get(c2, "w", 2, S(5, 8))[3] == v[3],
                      "a file with no CRC reads: %s", mmgan_ctx_error(ctx));
                mmgan_ckpt_free(c2);
            }
        }
        /* read back and written again: one CRC key, the new data's */
        {
            mmgan_ckpt *c2 = mmgan_ckpt_decode(ctx, buf, n);
            unsigned char *again = NULL;
            size_t n2 = 0;
            CHECK(c2 && mmgan_ckpt_encode(c2, &again, &n2) == MMGAN_OK && n2 == n && !memcmp(again, buf, n),
                  "a checkpoint read and written again is the same bytes");
            mmgan_free(ctx, again);
            mmgan_ckpt_free(c2);
        }
    }
    free(copy);
    mmgan_free(ctx, buf);
    mmgan_ckpt_free(ck);
    mmgan_ctx_clear_error(ctx);
}

/* A small training run with random inputs drawn inside the graph, Adam and
 * a moving average; `split` steps, save, a fresh start from the file, the
 * rest.  The final weights must equal an uninterrupted run's bit for bit. */
typedef struct run { mmgan_param *w, *b; mmgan_rng rng; mmgan_optimizer *opt; mmgan_graph *g; mmgan_plan *p; mmgan_node gr[2]; } run;

static void run_init(run *r, unsigned seed)
{
    mmgan_node x, y, wn, bn, loss, t[2];
    mmgan_opt_spec s = mmgan_opt_default(MMGAN_OPT_ADAM);
    mmgan_param *ps[2];
    r->w = mmgan_param_new(ctx, "w", 2, S(4, 6));
    r->b = mmgan_param_new(ctx, "b", 1, S(4));
    mmgan_rng_seed(&r->rng, seed, 3);
    mmgan_param_init(r->w, MMGAN_INIT_XAVIER_UNIFORM, 1.0f, &r->rng);
    ps[0] = r->w; ps[1] = r->b;
    s.lr = 0.01f;
    r->opt = mmgan_opt_new(ctx, &s, 2, ps);
    r->g = mmgan_graph_new(ctx);
    x = mmgan_random_normal(r->g, &r->rng, 2, S(16, 6), 0.0f, 1.0f);
    wn = mmgan_parameter(r->g, r->w);
    bn = mmgan_parameter(r->g, r->b);
    y = mmgan_tanh(r->g, mmgan_linear(r->g, x, wn, bn));
    loss = mmgan_mean(r->g, mmgan_square(r->g, mmgan_affine(r->g, y, 1.0f, -0.3f)));
    t[0] = wn; t[1] = bn;
    mmgan_grad(r->g, loss, 2, t, r->gr);
    r->p = mmgan_plan_new(r->g, 2, r->gr);
}

static void run_steps(run *r, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        mmgan_plan_run(r->p);
        mmgan_opt_step_plan(r->opt, r->p, r->gr);
    }
}

static void run_free(run *r)
{
    mmgan_plan_free(r->p); mmgan_graph_free(r->g); mmgan_opt_free(r->opt);
    mmgan_param_free(r->w); mmgan_param_free(r->b);
}

static void test_resume(void)
{
    run a, b, c;
    mmgan_ckpt *ck;
    int same;
    char path[600];
    test_path(path, sizeof path, "test_ckpt_resume.safetensors");
    run_init(&a, 5);
    run_steps(&a, 40);
    run_init(&b, 5);
    run_steps(&b, 17);
    ck = mmgan_ckpt_new(ctx);
    mmgan_ckpt_put_param(ck, b.w);
    mmgan_ckpt_put_param(ck, b.b);
    mmgan_opt_save(b.opt, ck, "adam");
    mmgan_rng_save(&b.rng, ck, "rng");
    CHECK(mmgan_ckpt_save(ck, path) == MMGAN_OK, "save: %s", mmgan_ctx_error(ctx));
    mmgan_ckpt_free(ck);
    run_free(&b);
    run_init(&c, 999);     /* a different start, overwritten by the checkpoint */
    ck = mmgan_ckpt_load(ctx, path);
    CHECK(ck != NULL, "load: %s", mmgan_ctx_error(ctx));
    if (ck) {
        CHECK(mmgan_ckpt_get_param(ck, c.w) == MMGAN_OK && mmgan_ckpt_get_param(ck, c.b) == MMGAN_OK &&
              mmgan_opt_load(c.opt, ck, "adam") == MMGAN_OK && mmgan_rng_load(&c.rng, ck, "rng") == MMGAN_OK,
              "restore: %s", mmgan_ctx_error(ctx));
        CHECK(mmgan_opt_steps(c.opt) == 17, "optimizer step count restored");
        mmgan_ckpt_free(ck);
    }
    run_steps(&c, 23);
    same = memcmp(mmgan_param_tensor(a.w)->data, mmgan_param_tensor(c.w)->data, 24 * sizeof(float)) == 0 &&
           memcmp(mmgan_param_tensor(a.b)->data, mmgan_param_tensor(c.b)->data, 4 * sizeof(float)) == 0;
    CHECK(same, "17 + 23 resumed steps equal 40 uninterrupted ones bit for bit");
    {
        /* A checkpoint of another model is refused by name and shape. */
        mmgan_param *wrong = mmgan_param_new(ctx, "w", 2, S(6, 4));
        ck = mmgan_ckpt_load(ctx, path);
        CHECK(ck && mmgan_ckpt_get_param(ck, wrong) == MMGAN_ERR_SHAPE && strstr(mmgan_ctx_error(ctx), "expects [6, 4]"),
              "mismatched model refused: %s", mmgan_ctx_error(ctx));
        mmgan_ckpt_free(ck);
        mmgan_param_free(wrong);
    }
    {
        /* Adam's moments are not loaded into RMSprop. */
        mmgan_opt_spec rs = mmgan_opt_default(MMGAN_OPT_RMSPROP);
        mmgan_param *ps[2];
        mmgan_optimizer *rms;
        ps[0] = c.w; ps[1] = c.b;
        rms = mmgan_opt_new(ctx, &rs, 2, ps);
        ck = mmgan_ckpt_load(ctx, path);
        CHECK(ck && mmgan_opt_load(rms, ck, "adam") == MMGAN_ERR_FORMAT && strstr(mmgan_ctx_error(ctx), "rmsprop"),
              "optimizer kind checked: %s", mmgan_ctx_error(ctx));
        mmgan_ckpt_free(ck);
        mmgan_opt_free(rms);
    }
    run_free(&a);
    run_free(&c);
    remove(path);
    mmgan_ctx_clear_error(ctx);
}

/* A batcher saved mid-epoch continues with the same batches. */
static void test_batcher_state(void)
{
    mmgan_dataset ds;
    mmgan_batcher a, b;
    mmgan_rng ra, rb;
    mmgan_ckpt *ck = mmgan_ckpt_new(ctx);
    float img[40], xa[12], xb[12];
    int i, same = 1;
    for (i = 0; i < 40; i++) img[i] = (float)i;
    memset(&ds, 0, sizeof ds);
    ds.n = 10; ds.c = 1; ds.h = 2; ds.w = 2; ds.images = img;
    mmgan_rng_seed(&ra, 3, 3);
    mmgan_batcher_init(ctx, &a, &ds, 3, &ra);
    for (i = 0; i < 5; i++) mmgan_batcher_next(&a, xa, NULL);     /* into the second epoch */
    CHECK(mmgan_batcher_save(&a, ck, "data") == MMGAN_OK && mmgan_rng_save(&ra, ck, "rng") == MMGAN_OK, "batcher save");
    mmgan_rng_seed(&rb, 99, 9);
    mmgan_batcher_init(ctx, &b, &ds, 3, &rb);
    CHECK(mmgan_batcher_load(&b, ck, "data") == MMGAN_OK && mmgan_rng_load(&rb, ck, "rng") == MMGAN_OK, "batcher load: %s",
          mmgan_ctx_error(ctx));
    for (i = 0; i < 9; i++) {
        mmgan_batcher_next(&a, xa, NULL);
        mmgan_batcher_next(&b, xb, NULL);
        same &= memcmp(xa, xb, sizeof xa) == 0;
    }
    CHECK(same && a.epoch == b.epoch, "restored batcher gives the same batches across epochs");
    {
        /* A damaged order (not a permutation) is refused. */
        float bad[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 8};
        mmgan_ckpt *c2 = mmgan_ckpt_new(ctx);
        mmgan_ckpt_put(c2, "data.order", 1, S(10), bad);
        mmgan_ckpt_put_meta(c2, "data.pos_epoch", "3 1");
        CHECK(mmgan_batcher_load(&b, c2, "data") == MMGAN_ERR_FORMAT && strstr(mmgan_ctx_error(ctx), "permutation"),
              "non-permutation refused: %s", mmgan_ctx_error(ctx));
        mmgan_ckpt_free(c2);
    }
    mmgan_batcher_free(ctx, &a);
    mmgan_batcher_free(ctx, &b);
    mmgan_ckpt_free(ck);
    mmgan_ctx_clear_error(ctx);
}

/* A checkpoint with one metadata entry key = value (and no arrays). */
static mmgan_ckpt *meta_ckpt(const char *key, const char *value)
{
    mmgan_ckpt *ck = mmgan_ckpt_new(ctx);
    mmgan_ckpt_put_meta(ck, key, value);
    return ck;
}

/* The state strings are read strictly: what their writers never write
 * (signs, spaces, 0x, values past the type, an even PCG increment) is
 * refused with a message, and a failed load changes nothing. */
static void test_state_strings(void)
{
    static const char *bad_rng[] = {
        "0000000000000000:0000000000000000:00000000:0",   /* even increment: zeros for ever */
        "0000000000000001:0000000000000002:00000000:0",
        "-000000000000001:0000000000000001:00000000:0",
        " 000000000000001:0000000000000001:00000000:0",
        "0x00000000000001:0000000000000001:00000000:0",
        "0000000000000001:0000000000000001:00000000:2",
        "0000000000000001:0000000000000001:00000000:00",
        "0000000000000001:0000000000000001:0000000g:0",
    };
    static const char *bad_steps[] = {"", "+5", " 5", "5 ", "-1", "0x10", "99999999999999999999999"};
    static const char *bad_pos[] = {"3 1x", "3  1", "-1 0", "11 0", "3", "4294967298 0", "3 -1", " 3 1",
                                    "3 99999999999999999999999"};
    mmgan_rng r, keep;
    mmgan_ckpt *ck;
    char v[64];
    int i;
    /* random generator */
    mmgan_rng_seed(&r, 11, 5);
    keep = r;
    for (i = 0; i < (int)(sizeof bad_rng / sizeof bad_rng[0]); i++) {
        ck = meta_ckpt("rng", bad_rng[i]);
        CHECK(mmgan_rng_load(&r, ck, "rng") == MMGAN_ERR_FORMAT && strstr(mmgan_ctx_error(ctx), "random generator") &&
              !memcmp(&r, &keep, sizeof r), "bad generator state %d refused: %s", i, bad_rng[i]);
        mmgan_ckpt_free(ck);
    }
    ck = meta_ckpt("rng", bad_rng[1]);
    CHECK(mmgan_rng_load(&r, ck, "rng") == MMGAN_ERR_FORMAT && strstr(mmgan_ctx_error(ctx), "even stream increment"),
          "an even increment named as the fault: %s", mmgan_ctx_error(ctx));
    mmgan_ckpt_free(ck);
    ck = meta_ckpt("rng", "0123456789ABCDEF:0000000000000003:3F800000:1");
    CHECK(mmgan_rng_load(&r, ck, "rng") == MMGAN_OK && r.state == 0x0123456789abcdefull && r.inc == 3 &&
          r.has_spare == 1 && r.spare == 1.0f, "generator state read exactly: %s", mmgan_ctx_error(ctx));
    mmgan_ckpt_free(ck);
    /* optimizer: two parameters; the second's moments missing */
    {
        mmgan_param *w = mmgan_param_new(ctx, "w", 1, S(3)), *b = mmgan_param_new(ctx, "b", 1, S(2)), *ps[2];
        mmgan_opt_spec spec = mmgan_opt_default(MMGAN_OPT_ADAM);
        mmgan_optimizer *o;
        mmgan_ckpt *saved = mmgan_ckpt_new(ctx), *part, *again;
        const float g3[3] = {1, 2, 3}, g2[2] = {4, 5}, *grads[2], *m0;
        float ones[3] = {1, 1, 1};
        ps[0] = w; ps[1] = b; grads[0] = g3; grads[1] = g2;
        o = mmgan_opt_new(ctx, &spec, 2, ps);
        mmgan_opt_step(o, grads);
        mmgan_opt_save(o, saved, "opt");
        for (i = 0; i < (int)(sizeof bad_steps / sizeof bad_steps[0]); i++) {
            mmgan_ckpt_put_meta(saved, "opt.step", bad_steps[i]);
            CHECK(mmgan_opt_load(o, saved, "opt") == MMGAN_ERR_FORMAT && strstr(mmgan_ctx_error(ctx), "step count"),
                  "bad step count '%s' refused: %s", bad_steps[i], mmgan_ctx_error(ctx));
        }
        part = mmgan_ckpt_new(ctx);
        mmgan_ckpt_put(part, "opt.w.m", 1, S(3), ones);
        mmgan_ckpt_put(part, "opt.w.v", 1, S(3), ones);
        mmgan_ckpt_put_meta(part, "opt.step", "7");
        mmgan_ckpt_put_meta(part, "opt.kind", "adam");
        CHECK(mmgan_opt_load(o, part, "opt") == MMGAN_ERR_FORMAT, "moments of one parameter missing: refused");
        again = mmgan_ckpt_new(ctx);
        mmgan_opt_save(o, again, "opt");
        m0 = mmgan_ckpt_get(again, "opt.w.m", 1, S(3));
        CHECK(m0 && m0[0] != 1.0f && !strcmp(mmgan_ckpt_get_meta(again, "opt.step"), "1"),
              "a failed load leaves the optimizer as it was");
        mmgan_ckpt_free(again);
        /* The largest count a long holds is accepted, and stepping on stays defined. */
        snprintf(v, sizeof v, "%ld", LONG_MAX);
        mmgan_ckpt_put_meta(saved, "opt.step", v);
        CHECK(mmgan_opt_load(o, saved, "opt") == MMGAN_OK && mmgan_opt_step(o, grads) == MMGAN_OK, "step LONG_MAX: %s",
              mmgan_ctx_error(ctx));
        again = mmgan_ckpt_new(ctx);
        mmgan_opt_save(o, again, "opt");
        CHECK(!strcmp(mmgan_ckpt_get_meta(again, "opt.step"), v), "the step count stays at LONG_MAX");
        mmgan_ckpt_free(again);
        mmgan_ckpt_free(part);
        mmgan_ckpt_free(saved);
        mmgan_opt_free(o);
        mmgan_param_free(w);
        mmgan_param_free(b);
    }
    /* batcher: position and epoch */
    {
        mmgan_dataset ds;
        mmgan_batcher bt;
        mmgan_rng br;
        float img[40], order[10], x[12];
        memset(&ds, 0, sizeof ds);
        for (i = 0; i < 40; i++) img[i] = (float)i;
        for (i = 0; i < 10; i++) order[i] = (float)(9 - i);
        ds.n = 10; ds.c = 1; ds.h = 2; ds.w = 2; ds.images = img;
        mmgan_rng_seed(&br, 1, 1);
        mmgan_batcher_init(ctx, &bt, &ds, 3, &br);
        for (i = 0; i < (int)(sizeof bad_pos / sizeof bad_pos[0]); i++) {
            ck = mmgan_ckpt_new(ctx);
            mmgan_ckpt_put(ck, "d.order", 1, S(10), order);
            mmgan_ckpt_put_meta(ck, "d.pos_epoch", bad_pos[i]);
            CHECK(mmgan_batcher_load(&bt, ck, "d") == MMGAN_ERR_FORMAT && bt.pos == 0 && bt.epoch == 0,
                  "bad batch position '%s' refused: %s", bad_pos[i], mmgan_ctx_error(ctx));
            mmgan_ckpt_free(ck);
        }
        ck = mmgan_ckpt_new(ctx);
        mmgan_ckpt_put(ck, "d.order", 1, S(10), order);
        snprintf(v, sizeof v, "9 %ld", LONG_MAX);
        mmgan_ckpt_put_meta(ck, "d.pos_epoch", v);
        CHECK(mmgan_batcher_load(&bt, ck, "d") == MMGAN_OK && bt.pos == 9 && bt.epoch == LONG_MAX, "epoch LONG_MAX read");
        CHECK(mmgan_batcher_next(&bt, x, NULL) == 1 && bt.epoch == LONG_MAX, "a new epoch past LONG_MAX stays there");
        mmgan_ckpt_free(ck);
        mmgan_batcher_free(ctx, &bt);
    }
    mmgan_ctx_clear_error(ctx);
}

/* Decodes a header (and `data` bytes of zeros after it). */
static mmgan_ckpt *decode_header(const char *header, size_t data)
{
    size_t hl = strlen(header), k;
    unsigned char *buf = (unsigned char *)calloc(8 + hl + data + 1, 1);
    mmgan_ckpt *ck;
    for (k = 0; k < 8; k++) buf[k] = (unsigned char)((uint64_t)hl >> (8 * k));
    memcpy(buf + 8, header, hl);
    ck = mmgan_ckpt_decode(ctx, buf, 8 + hl + data);
    free(buf);
    return ck;
}

/* JSON objects with no entries, fields given twice, and checks that need
 * every array: overlaps, gaps and duplicate names far apart. */
static void test_header_structure(void)
{
    static const char *bad[] = {
        "{}}", "{} }", "{,}", "{\"__metadata__\":{}}}",
        "{\"__metadata__\":{},}",
        "{\"__metadata__\":{\"a\":\"1\"},\"__metadata__\":{\"b\":\"2\"}}",
        "{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}",
        "{\"__metadata__\":{\"a\":\"1\" \"b\":\"2\"}}",
        "{\"x\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"x\":{}}",
    };
    mmgan_ckpt *ck, *empty = mmgan_ckpt_new(ctx), *back;
    unsigned char *buf;
    size_t n, used;
    char *h;
    int i;
    CHECK(mmgan_ckpt_encode(empty, &buf, &n) == MMGAN_OK, "encode an empty checkpoint");
    back = mmgan_ckpt_decode(ctx, buf, n);
    CHECK(back && mmgan_ckpt_count(back) == 0, "an empty checkpoint reads back: %s", mmgan_ctx_error(ctx));
    mmgan_ckpt_free(back);
    mmgan_free(ctx, buf);
    mmgan_ckpt_put_meta(empty, "only", "metadata");
    mmgan_ckpt_encode(empty, &buf, &n);
    back = mmgan_ckpt_decode(ctx, buf, n);
    CHECK(back && !strcmp(mmgan_ckpt_get_meta(back, "only"), "metadata"), "metadata alone reads back: %s", mmgan_ctx_error(ctx));
    mmgan_ckpt_free(back);
    mmgan_free(ctx, buf);
    mmgan_ckpt_free(empty);
    ck = decode_header("{\"__metadata__\":{},\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    CHECK(ck && mmgan_ckpt_count(ck) == 1, "empty metadata object: %s", mmgan_ctx_error(ctx));
    mmgan_ckpt_free(ck);
    ck = decode_header("{ }", 0);
    CHECK(ck && mmgan_ckpt_count(ck) == 0, "an empty object with a space: %s", mmgan_ctx_error(ctx));
    mmgan_ckpt_free(ck);
    CHECK(decode_header("{}", 4) == NULL && strstr(mmgan_ctx_error(ctx), "names no tensor"), "data with no tensor");
    for (i = 0; i < (int)(sizeof bad / sizeof bad[0]); i++)
        CHECK(decode_header(bad[i], 4) == NULL && strstr(mmgan_ctx_error(ctx), "checkpoint"), "malformed header accepted: %s",
              bad[i]);
    /* 300 one-float tensors: tensor 280 made to overlap tensor 0 (a gap
     * elsewhere keeps the total right), then named like tensor 1. */
    h = (char *)malloc(300 * 80 + 16);
    for (i = 0; i < 3; i++) {
        int t;
        used = 0;
        used += (size_t)sprintf(h + used, "{");
        for (t = 0; t < 300; t++) {
            int off = t == 280 && i == 0 ? 0 : 4 * t;
            char name[16];
            sprintf(name, "t%d", t == 280 && i == 1 ? 1 : t);
            used += (size_t)sprintf(h + used, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[%d,%d]}", t ? "," : "",
                                    name, off, off + 4);
        }
        sprintf(h + used, "}");
        ck = decode_header(h, 300 * 4);
        if (i == 0) CHECK(!ck && strstr(mmgan_ctx_error(ctx), "overlap"), "overlap of tensors 0 and 280: %s", mmgan_ctx_error(ctx));
        if (i == 1) CHECK(!ck && strstr(mmgan_ctx_error(ctx), "duplicate tensor: t1"), "duplicate name 280 tensors apart: %s",
                          mmgan_ctx_error(ctx));
        if (i == 2) CHECK(ck && mmgan_ckpt_count(ck) == 300, "300 tensors read: %s", mmgan_ctx_error(ctx));
        mmgan_ckpt_free(ck);
    }
    free(h);
    /* 20,000 metadata keys, checked for duplicates once all are read (a
     * search per key made 120,000 take 50 s): one repeated 19,999 keys
     * apart is still refused. */
    h = (char *)malloc(20000 * 24 + 128);
    for (i = 0; i < 2; i++) {
        int t;
        used = (size_t)sprintf(h, "{\"__metadata__\":{");
        for (t = 0; t < 20000; t++)
            used += (size_t)sprintf(h + used, "%s\"k%05d\":\"v\"", t ? "," : "", i == 1 && t == 19999 ? 0 : t);
        sprintf(h + used, "}}");
        ck = decode_header(h, 0);
        if (i == 0) CHECK(ck && mmgan_ckpt_get_meta(ck, "k19999") && !strcmp(mmgan_ckpt_get_meta(ck, "k00000"), "v"),
                          "20,000 metadata keys read: %s", mmgan_ctx_error(ctx));
        if (i == 1) CHECK(!ck && strstr(mmgan_ctx_error(ctx), "duplicate metadata key: k00000"),
                          "a key repeated 19,999 keys apart: %s", mmgan_ctx_error(ctx));
        mmgan_ckpt_free(ck);
    }
    free(h);
    /* A scalar needs no shape array. */
    {
        float one = 1.0f;
        mmgan_ckpt *sc = mmgan_ckpt_new(ctx);
        CHECK(mmgan_ckpt_put(sc, "scalar", 0, NULL, &one) == MMGAN_OK && mmgan_ckpt_get(sc, "scalar", 0, NULL),
              "a scalar put with no shape: %s", mmgan_ctx_error(ctx));
        mmgan_ckpt_free(sc);
    }
    mmgan_ctx_clear_error(ctx);
}

/* --writer: checkpoints of 4 MB whose every value equals the version
 * number, saved over and over; --check: the file is complete and consistent. */
static int writer(const char *path)
{
    float *v = (float *)malloc(sizeof(float) * (1 << 20));
    char ver[32];
    int k, i;
    for (k = 1;; k++) {
        mmgan_ckpt *ck = mmgan_ckpt_new(ctx);
        for (i = 0; i < (1 << 20); i++) v[i] = (float)k;
        snprintf(ver, sizeof ver, "%d", k);
        mmgan_ckpt_put(ck, "v", 1, S(1 << 20), v);
        mmgan_ckpt_put_meta(ck, "version", ver);
        if (mmgan_ckpt_save(ck, path) != MMGAN_OK) return 1;
        mmgan_ckpt_free(ck);
        if (k == 1) { printf("first\n"); fflush(stdout); }
    }
}

static int check(const char *path)
{
    mmgan_ckpt *ck = mmgan_ckpt_load(ctx, path);
    const float *v;
    const char *ver;
    int i;
    if (!ck) { fprintf(stderr, "%s\n", mmgan_ctx_error(ctx)); return 1; }
    v = mmgan_ckpt_get(ck, "v", 1, S(1 << 20));
    ver = mmgan_ckpt_get_meta(ck, "version");
    if (!v || !ver) return 1;
    for (i = 0; i < (1 << 20); i++)
        if (v[i] != (float)atoi(ver)) { fprintf(stderr, "mixed versions\n"); return 1; }
    mmgan_ckpt_free(ck);
    return 0;
}

/* A file read without knowing its shapes: every array listed by name and
 * shape, then read with the shape found; scalars have no dimensions. */
static void test_shape_query(void)
{
    mmgan_ckpt *ck = mmgan_ckpt_new(ctx), *back;
    unsigned char *buf = NULL;
    size_t n = 0;
    float w[24], one = 2.5f;
    int i, nd = -1, sh[MMGAN_MAX_DIMS], seen = 0;
    for (i = 0; i < 24; i++) w[i] = (float)i;
    CHECK(mmgan_ckpt_put(ck, "w", 4, S(2, 3, 2, 2), w) == MMGAN_OK, "put w");
    CHECK(mmgan_ckpt_put(ck, "s", 0, NULL, &one) == MMGAN_OK, "put a scalar");
    CHECK(mmgan_ckpt_put(ck, "v", 1, S(7), w) == MMGAN_OK, "put v");
    CHECK(mmgan_ckpt_encode(ck, &buf, &n) == MMGAN_OK, "encode");
    back = buf ? mmgan_ckpt_decode(ctx, buf, n) : NULL;
    CHECK(back != NULL, "decode: %s", mmgan_ctx_error(ctx));
    for (i = 0; back && i < mmgan_ckpt_count(back); i++) {
        const char *name = mmgan_ckpt_name(back, i);
        const float *v;
        CHECK(mmgan_ckpt_shape(back, i, &nd, sh) == MMGAN_OK, "shape of array %d", i);
        CHECK(mmgan_ckpt_find(back, name) == i, "'%s' found where it is listed", name);
        v = mmgan_ckpt_get(back, name, nd, sh);
        CHECK(v != NULL, "'%s' read with the shape found: %s", name, mmgan_ctx_error(ctx));
        if (!strcmp(name, "w")) {
            seen |= 1;
            CHECK(nd == 4 && sh[0] == 2 && sh[1] == 3 && sh[2] == 2 && sh[3] == 2 && v && v[23] == 23.0f,
                  "w: %d dimensions [%d %d %d %d]", nd, sh[0], sh[1], sh[2], sh[3]);
        } else if (!strcmp(name, "s")) {
            seen |= 2;
            CHECK(nd == 0 && sh[0] == 1 && sh[3] == 1 && v && *v == 2.5f, "scalar: %d dimensions", nd);
        } else if (!strcmp(name, "v")) {
            seen |= 4;
            CHECK(nd == 1 && sh[0] == 7 && sh[1] == 1, "v: %d dimensions [%d]", nd, sh[0]);
        }
    }
    CHECK(seen == 7, "all three arrays listed");
    CHECK(mmgan_ckpt_find(back, "x") == -1 && mmgan_ckpt_find(back, NULL) == -1 && mmgan_ckpt_find(NULL, "w") == -1,
          "no such array: -1");
    CHECK(mmgan_ckpt_shape(back, 3, &nd, sh) == MMGAN_ERR_INVALID && strstr(mmgan_ctx_error(ctx), "array 3"),
          "index past the end refused: %s", mmgan_ctx_error(ctx));
    CHECK(mmgan_ckpt_shape(back, -1, &nd, sh) == MMGAN_ERR_INVALID, "negative index refused");
    CHECK(mmgan_ckpt_shape(back, 0, NULL, sh) == MMGAN_ERR_INVALID && mmgan_ckpt_shape(back, 0, &nd, NULL) == MMGAN_ERR_INVALID,
          "NULL outputs refused");
    CHECK(mmgan_ckpt_shape(NULL, 0, &nd, sh) == MMGAN_ERR_INVALID, "no checkpoint");
    /* a shape of more dimensions than a tensor has was read past its end */
    CHECK(mmgan_ckpt_get(back, "w", 5, S(2, 3, 2, 2, 1)) == NULL && strstr(mmgan_ctx_error(ctx), "5 dimensions"),
          "5 dimensions refused: %s", mmgan_ctx_error(ctx));
    CHECK(mmgan_ckpt_get(back, "w", 4, NULL) == NULL && strstr(mmgan_ctx_error(ctx), "no shape"),
          "no shape refused: %s", mmgan_ctx_error(ctx));
    CHECK(mmgan_ckpt_get(back, "w", -1, sh) == NULL, "-1 dimensions refused");
    mmgan_ckpt_free(back);
    mmgan_ckpt_free(ck);
    mmgan_free(ctx, buf);
}

int main(int argc, char **argv)
{
    test_suite = "test_ckpt";
    test_set_dir(argv[0]);
    ctx = mmgan_ctx_new(NULL);
    if (argc == 3 && !strcmp(argv[1], "--writer")) return writer(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "--check")) return check(argv[2]);
    test_round_trip();
    test_shape_query();
    test_malformed();
    test_corruption();
    test_resume();
    test_batcher_state();
    test_state_strings();
    test_header_structure();
    mmgan_ctx_free(ctx);
    return test_summary();
}
