/* make fuzz: libFuzzer, with AddressSanitizer and UndefinedBehaviorSanitizer,
 * over everything that reads a file: safetensors checkpoints and the
 * optimizer, batcher and generator states saved in them, gzip and IDX.  The
 * first byte of an input picks the reader, the rest is the file.  Whatever
 * the bytes, a reader must end in a success or in a status with a message;
 * a checkpoint it accepts must encode and read back the same; a state it
 * refuses must leave the object as it was; a loaded state must be usable.
 * Built without libFuzzer (-DMMGAN_FUZZ_MAIN) it writes seed inputs
 * (--seeds DIR) or replays the files named on its command line. */
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static mmgan_ctx *ctx;
static volatile unsigned sink;   /* keeps reads that only ASan looks at */

#define MUST(cond) do { if (!(cond)) { \
    fprintf(stderr, "fuzz_parsers: '%s' fails (line %d; last error: %s)\n", #cond, __LINE__, mmgan_ctx_error(ctx)); \
    abort(); } } while (0)

/* A refusal leaves a message. */
static void refused(mmgan_status st)
{
    MUST(st != MMGAN_OK);
    MUST(mmgan_ctx_error(ctx)[0] != '\0');
}

static void fuzz_ckpt(const unsigned char *d, size_t n)
{
    mmgan_ckpt *ck = mmgan_ckpt_decode(ctx, d, n), *back;
    unsigned char *enc = NULL;
    size_t ne = 0;
    int i;
    if (!ck) { refused(MMGAN_ERR_FORMAT); return; }
    MUST(mmgan_ckpt_encode(ck, &enc, &ne) == MMGAN_OK);
    back = mmgan_ckpt_decode(ctx, enc, ne);
    /* the same, and the data's CRC-32 in the metadata (added where it was not) */
    MUST(back && back->n == ck->n &&
         back->nmeta == ck->nmeta + (!mmgan_ckpt_get_meta(ck, MMGAN__CK_CRC) && (ck->nmeta || ck->n)));
    for (i = 0; i < ck->n; i++) {
        const mmgan__ckarr *a = &ck->arr[i];
        const float *v = mmgan_ckpt_get(back, a->name, a->ndim, a->shape);
        MUST(v && !memcmp(v, a->data, a->numel * sizeof(float)));
    }
    for (i = 0; i < ck->nmeta; i++) {
        const char *v = mmgan_ckpt_get_meta(back, ck->meta[i].key);
        MUST(v && !strcmp(v, ck->meta[i].value));
    }
    mmgan_free(ctx, enc);
    mmgan_ckpt_free(back);
    mmgan_ckpt_free(ck);
}

/* The states under the names the seeds use: "rng", "data" (a batcher over
 * 5 images) and "opt" (Adam over w [2, 3] and b [3]). */
static void fuzz_state(const unsigned char *d, size_t n)
{
    static float img[5 * 4];
    static const float gw[6] = {0.5f, -1, 2, 0.25f, -0.125f, 3}, gb[3] = {1, -2, 0.5f};
    const float *grads[2];
    mmgan_ckpt *ck = mmgan_ckpt_decode(ctx, d, n);
    mmgan_dataset ds;
    mmgan_batcher b;
    mmgan_rng r, r0;
    mmgan_param *w, *bias, *ps[2];
    mmgan_opt_spec spec = mmgan_opt_default(MMGAN_OPT_ADAM);
    mmgan_optimizer *o;
    mmgan_status st;
    float x[2 * 4];
    int i;
    if (!ck) return;
    mmgan_rng_seed(&r, 1, 1);
    r0 = r;
    st = mmgan_rng_load(&r, ck, "rng");
    if (st == MMGAN_OK) {
        for (i = 0; i < 64; i++) { (void)mmgan_rng_below(&r, 1000); (void)mmgan_rng_normal(&r); }
    } else {
        refused(st);
        MUST(!memcmp(&r, &r0, sizeof r));
    }
    memset(&ds, 0, sizeof ds);
    ds.n = 5; ds.c = 1; ds.h = 2; ds.w = 2; ds.images = img;
    mmgan_rng_seed(&r, 2, 2);
    MUST(mmgan_batcher_init(ctx, &b, &ds, 2, &r) == MMGAN_OK);
    st = mmgan_batcher_load(&b, ck, "data");
    if (st == MMGAN_OK) for (i = 0; i < 12; i++) mmgan_batcher_next(&b, x, NULL);
    else { refused(st); MUST(b.pos == 0 && b.epoch == 0); }
    mmgan_batcher_free(ctx, &b);
    w = mmgan_param_new(ctx, "w", 2, (const int[]){2, 3});
    bias = mmgan_param_new(ctx, "b", 1, (const int[]){3});
    ps[0] = w; ps[1] = bias;
    o = mmgan_opt_new(ctx, &spec, 2, ps);
    MUST(o);
    st = mmgan_opt_load(o, ck, "opt");
    if (st == MMGAN_OK) {
        grads[0] = gw; grads[1] = gb;
        MUST(mmgan_opt_step(o, grads) == MMGAN_OK && mmgan_opt_step(o, grads) == MMGAN_OK);
    } else {
        refused(st);
        MUST(o->t == 0);
        for (i = 0; i < 6; i++) MUST(o->m[0][i] == 0.0f && o->v[0][i] == 0.0f);
    }
    mmgan_opt_free(o);
    mmgan_param_free(w);
    mmgan_param_free(bias);
    mmgan_ckpt_free(ck);
}

static void fuzz_idx(const unsigned char *d, size_t n)
{
    mmgan_idx idx;
    mmgan_dataset ds;
    unsigned char *out = NULL;
    size_t on = 0, count = 1, k;
    unsigned sum = 0;
    mmgan_status st = mmgan_idx_parse(ctx, d, n, &idx);
    int i;
    if (st == MMGAN_OK) {
        for (i = 0; i < idx.ndim; i++) count *= (size_t)idx.dims[i];
        MUST(count == idx.count);
        for (k = 0; k < idx.count; k++) sum += idx.data[k];   /* every byte readable (ASan) */
        sink = sum;
        if (idx.ndim == 3 && mmgan_dataset_from_idx(ctx, &idx, NULL, -1.0f, 1.0f, &ds) == MMGAN_OK)
            mmgan_dataset_free(ctx, &ds);
        mmgan_idx_free(ctx, &idx);
    } else {
        refused(st);
    }
    st = mmgan_gunzip(ctx, d, n, &out, &on);
    if (st == MMGAN_OK) MUST(out != NULL);
    else { refused(st); MUST(out == NULL); }
    mmgan_free(ctx, out);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (!ctx && !(ctx = mmgan_ctx_new(NULL))) abort();
    if (size == 0) return 0;
    mmgan_ctx_clear_error(ctx);
    switch (data[0] % 3) {
    case 0: fuzz_ckpt(data + 1, size - 1); break;
    case 1: fuzz_state(data + 1, size - 1); break;
    default: fuzz_idx(data + 1, size - 1); break;
    }
    return 0;
}

#ifdef MMGAN_FUZZ_MAIN
/* Writes kind byte + bytes to DIR/name. */
static int put(const char *dir, const char *name, int kind, const unsigned char *p, size_t n)
{
    char path[1024];
    FILE *f;
    unsigned char k = (unsigned char)kind;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f || fwrite(&k, 1, 1, f) != 1 || fwrite(p, 1, n, f) != n || fclose(f)) {
        fprintf(stderr, "fuzz_parsers: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

/* Seeds: a checkpoint with every state the state reader looks for, and a
 * 2 x 2 x 3 IDX file, raw and as a gzip member of one stored block. */
static int seeds(const char *dir)
{
    static const unsigned char idx[4 + 12 + 12] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3,
                                                   1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    unsigned char gz[64], *enc;
    size_t ne, n = sizeof idx, k;
    uint32_t crc = mmgan_crc32(0, idx, n);
    static float img[5 * 4], gw[6] = {1, 2, 3, 4, 5, 6}, gb[3] = {1, 1, 1};
    const float *grads[2];
    mmgan_ckpt *ck = mmgan_ckpt_new(ctx);
    mmgan_dataset ds;
    mmgan_batcher b;
    mmgan_rng r;
    mmgan_param *w = mmgan_param_new(ctx, "w", 2, (const int[]){2, 3}), *bias = mmgan_param_new(ctx, "b", 1, (const int[]){3});
    mmgan_param *ps[2];
    mmgan_opt_spec spec = mmgan_opt_default(MMGAN_OPT_ADAM);
    mmgan_optimizer *o;
    float x[2 * 4];
    int bad = 0;
    ps[0] = w; ps[1] = bias; grads[0] = gw; grads[1] = gb;
    o = mmgan_opt_new(ctx, &spec, 2, ps);
    mmgan_opt_step(o, grads);
    memset(&ds, 0, sizeof ds);
    ds.n = 5; ds.c = 1; ds.h = 2; ds.w = 2; ds.images = img;
    mmgan_rng_seed(&r, 3, 3);
    mmgan_batcher_init(ctx, &b, &ds, 2, &r);
    mmgan_batcher_next(&b, x, NULL);
    mmgan_rng_normal(&r);
    if (mmgan_opt_save(o, ck, "opt") || mmgan_batcher_save(&b, ck, "data") || mmgan_rng_save(&r, ck, "rng") ||
        mmgan_ckpt_put_param(ck, w) || mmgan_ckpt_encode(ck, &enc, &ne)) {
        fprintf(stderr, "fuzz_parsers: seeds: %s\n", mmgan_ctx_error(ctx));
        return 1;
    }
    bad |= put(dir, "ckpt", 0, enc, ne) | put(dir, "state", 1, enc, ne) | put(dir, "idx", 2, idx, n);
    memcpy(gz, "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", 10);
    gz[10] = 1;                                     /* last block, stored */
    gz[11] = (unsigned char)n; gz[12] = 0; gz[13] = (unsigned char)~n; gz[14] = 0xff;
    memcpy(gz + 15, idx, n);
    for (k = 0; k < 4; k++) {
        gz[15 + n + k] = (unsigned char)(crc >> (8 * k));
        gz[19 + n + k] = (unsigned char)(n >> (8 * k));
    }
    bad |= put(dir, "idx.gz", 2, gz, 23 + n);
    mmgan_free(ctx, enc);
    mmgan_ckpt_free(ck);
    mmgan_batcher_free(ctx, &b);
    mmgan_opt_free(o);
    mmgan_param_free(w);
    mmgan_param_free(bias);
    return bad;
}

int main(int argc, char **argv)
{
    int i;
    if (!(ctx = mmgan_ctx_new(NULL))) return 1;
    if (argc == 3 && !strcmp(argv[1], "--seeds")) return seeds(argv[2]);
    if (argc < 2) {
        fprintf(stderr, "usage: fuzz_parsers --seeds DIR | FILE...  (replays each file as one input)\n");
        return 2;
    }
    for (i = 1; i < argc; i++) {
        unsigned char *data;
        size_t n;
        if (mmgan_read_file(ctx, argv[i], &data, &n) != MMGAN_OK) {
            fprintf(stderr, "fuzz_parsers: %s\n", mmgan_ctx_error(ctx));
            return 1;
        }
        LLVMFuzzerTestOneInput(data, n);
        mmgan_free(ctx, data);
    }
    printf("fuzz_parsers: %d inputs replayed\n", argc - 1);
    return 0;
}
#endif
