/* I/O: inflate against streams made by zlib (stored, fixed and dynamic
 * blocks), the shipped MNIST test set against checksums computed with
 * Python's gzip and zlib, every malformed-input case, random corruption,
 * PNG structure and content, batches and atomic writes. */
#define MMGAN_IMPLEMENTATION
#define MMGAN_READ_MAX ((size_t)1 << 26)   /* 64 MiB: this suite's files fit, /dev/zero is refused soon */
#include "../mmgan.h"
#include "harness.h"
#include <limits.h>
#include <stdlib.h>

static mmgan_ctx *ctx;

/* Raw DEFLATE streams from Python's zlib (wbits -15): 900 bytes stored and
 * with fixed codes, 1672 bytes of text with dynamic codes. */
static const unsigned char vec_stored[905] = {1,132,3,123,252,0,7,14,21,28,35,42,49,57,64,71,78,85,92,99,106,114,121,128,135,142,149,156,163,171,178,185,192,199,206,213,220,228,235,242,249,0,7,14,21,29,36,43,50,57,64,71,78,86,93,100,107,114,121,128,135,143,150,157,164,171,178,185,192,200,207,214,221,228,235,242,249,1,8,15,22,29,36,43,50,58,65,72,79,86,93,100,107,115,122,129,136,143,150,157,164,172,179,186,193,200,207,214,221,229,236,243,250,1,8,15,22,30,37,44,51,58,65,72,79,87,94,101,108,115,122,129,136,144,151,158,165,172,179,186,193,201,208,215,222,229,236,243,250,2,9,16,23,30,37,44,51,59,66,73,80,87,94,101,108,116,123,130,137,144,151,158,165,173,180,187,194,201,208,215,222,230,237,244,251,2,9,16,23,31,38,45,52,59,66,73,80,88,95,102,109,116,123,130,137,145,152,159,166,173,180,187,194,202,209,216,223,230,237,244,251,3,10,17,24,31,38,45,52,60,67,74,81,88,95,102,109,117,124,131,138,145,152,159,166,174,181,188,195,202,209,216,223,231,238,245,252,3,10,17,24,32,39,46,53,60,67,74,81,89,96,103,110,117,124,131,138,146,153,160,167,174,181,188,195,203,210,217,224,231,238,245,252,4,11,18,25,32,39,46,53,61,68,75,82,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,109,109,103,97,110,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,109,109,103,97,110,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,109,109,103,97,110,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,109,109,103,97,110,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,109,109,103,97,110,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,109,109,103,97,110,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,109,109,103,97,110,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,109,109,103,97,110,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,109,109,103,97,110,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,109,109,103,97,110,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,109,109,103,97,110,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,109,109,103,97,110,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,109,109,103,97,110,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,109,109,103,97,110,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,109,109,103,97,110,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,109,109,103,97,110,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,109,109,103,97,110,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,109,109,103,97,110,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,109,109,103,97,110,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,104,101,108,108,111,32,109,109,103,97,110,32};
#define VEC_STORED_LEN 900
#define VEC_STORED_CRC 0x3a70f4a1u
static const unsigned char vec_fixed[265] = {99,96,231,19,149,81,214,50,180,116,112,247,11,141,73,206,42,170,108,104,239,155,58,103,241,234,77,59,15,28,63,119,245,206,147,215,159,126,50,0,213,200,170,104,27,129,212,132,197,166,100,131,212,244,79,155,187,4,164,230,196,249,107,119,65,106,24,57,248,197,64,106,172,28,61,252,65,106,138,171,26,59,64,106,214,108,222,117,16,164,230,233,155,207,191,64,106,228,84,117,140,65,106,194,227,82,115,64,106,38,76,159,183,20,164,230,228,133,235,247,64,106,152,56,5,196,65,106,172,157,60,3,64,106,74,170,155,58,65,106,214,110,217,125,8,164,230,217,219,47,191,65,106,228,213,116,77,64,106,34,226,211,114,65,106,38,206,152,191,12,164,230,212,197,27,247,65,106,152,185,4,37,64,106,108,156,189,2,65,106,74,107,154,187,64,106,214,109,221,115,24,164,230,249,187,175,127,64,106,20,212,245,76,65,106,34,19,210,243,64,106,38,205,92,176,28,164,230,244,165,155,15,64,106,88,184,133,36,65,106,108,93,188,131,50,82,115,114,242,21,48,201,220,220,244,196,60,133,81,217,81,89,242,100,1};
#define VEC_FIXED_LEN 900
#define VEC_FIXED_CRC 0x3a70f4a1u
static const unsigned char vec_dynamic[175] = {237,209,69,26,130,64,24,6,224,171,252,75,19,187,187,187,177,19,116,128,81,96,104,212,211,59,135,112,163,15,235,47,54,47,43,33,208,109,124,125,0,111,16,87,5,129,60,225,110,43,154,9,196,65,6,88,52,150,185,247,11,110,68,44,128,198,209,158,242,2,158,150,92,108,73,32,96,7,209,232,141,84,144,177,110,19,131,110,69,147,1,246,135,94,125,254,64,48,20,102,34,209,88,60,145,76,165,51,217,92,190,80,44,149,43,213,90,189,209,108,181,59,221,94,127,48,28,141,39,211,217,124,193,46,87,235,205,118,183,63,28,79,231,11,199,95,111,72,16,37,124,127,200,138,74,52,221,48,45,219,113,191,253,199,122,66,158,144,39,228,9,253,181,208,7};
#define VEC_DYNAMIC_LEN 1672
#define VEC_DYNAMIC_CRC 0x100449a5u

static void test_inflate_vectors(void)
{
    static const struct { const char *name; const unsigned char *in; size_t n, len; uint32_t crc; } v[3] = {
        {"stored", vec_stored, sizeof vec_stored, VEC_STORED_LEN, VEC_STORED_CRC},
        {"fixed", vec_fixed, sizeof vec_fixed, VEC_FIXED_LEN, VEC_FIXED_CRC},
        {"dynamic", vec_dynamic, sizeof vec_dynamic, VEC_DYNAMIC_LEN, VEC_DYNAMIC_CRC},
    };
    int i;
    for (i = 0; i < 3; i++) {
        unsigned char *out = NULL;
        size_t n = 0;
        mmgan_status st = mmgan_inflate(ctx, v[i].in, v[i].n, &out, &n);
        CHECK(st == MMGAN_OK && n == v[i].len && mmgan_crc32(0, out, n) == v[i].crc,
              "inflate %s: status %d, %lu bytes", v[i].name, (int)st, (unsigned long)n);
        mmgan_free(ctx, out);
        /* Every truncation is an error, never a crash or a short success. */
        {
            size_t cut;
            int bad = 0;
            for (cut = 0; cut < v[i].n; cut += 1 + v[i].n / 40) {
                out = NULL;
                if (mmgan_inflate(ctx, v[i].in, cut, &out, &n) == MMGAN_OK) bad++;
                mmgan_free(ctx, out);
            }
            CHECK(bad == 0, "inflate %s: %d truncated streams accepted", v[i].name, bad);
        }
    }
    CHECK(mmgan_crc32(0, (const unsigned char *)"123456789", 9) == 0xCBF43926u, "CRC-32 check value");
}

/* Random corruption of a gzip file: every outcome is a status, and a
 * success only with the right content (the CRC catches the rest). */
static void test_corruption(const unsigned char *gz, size_t n)
{
    mmgan_rng rng;
    unsigned char *copy = (unsigned char *)malloc(n), *out;
    size_t on;
    int t, wrong = 0;
    mmgan_rng_seed(&rng, 77, 0);
    for (t = 0; t < 300; t++) {
        int k, flips = 1 + (int)mmgan_rng_below(&rng, 4);
        memcpy(copy, gz, n);
        for (k = 0; k < flips; k++) copy[mmgan_rng_below(&rng, (uint32_t)n)] ^= (unsigned char)(1 + mmgan_rng_below(&rng, 255));
        out = NULL;
        if (mmgan_gunzip(ctx, copy, n, &out, &on) == MMGAN_OK && (on != VEC_DYNAMIC_LEN || mmgan_crc32(0, out, on) != VEC_DYNAMIC_CRC))
            wrong++;
        mmgan_free(ctx, out);
    }
    CHECK(wrong == 0, "corrupted gzip accepted with wrong content %d times", wrong);
    free(copy);
}

/* A gzip member around a raw stream (header, deflate, CRC-32, length). */
static size_t make_gzip(unsigned char *dst, const unsigned char *deflate, size_t n, uint32_t crc, uint32_t len)
{
    static const unsigned char hdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3};
    memcpy(dst, hdr, 10);
    memcpy(dst + 10, deflate, n);
    dst[10 + n] = (unsigned char)crc; dst[11 + n] = (unsigned char)(crc >> 8);
    dst[12 + n] = (unsigned char)(crc >> 16); dst[13 + n] = (unsigned char)(crc >> 24);
    dst[14 + n] = (unsigned char)len; dst[15 + n] = (unsigned char)(len >> 8);
    dst[16 + n] = (unsigned char)(len >> 16); dst[17 + n] = (unsigned char)(len >> 24);
    return n + 18;
}

static void test_gzip_errors(void)
{
    unsigned char gz[512], *out = NULL;
    size_t n = make_gzip(gz, vec_dynamic, sizeof vec_dynamic, VEC_DYNAMIC_CRC, VEC_DYNAMIC_LEN), on;
    CHECK(mmgan_gunzip(ctx, gz, n, &out, &on) == MMGAN_OK && on == VEC_DYNAMIC_LEN, "gzip member");
    mmgan_free(ctx, out); out = NULL;
    gz[n - 8] ^= 1;
    CHECK(mmgan_gunzip(ctx, gz, n, &out, &on) == MMGAN_ERR_FORMAT && strstr(mmgan_ctx_error(ctx), "CRC-32"),
          "bad CRC reported: %s", mmgan_ctx_error(ctx));
    gz[n - 8] ^= 1;
    gz[n - 4] ^= 1;
    CHECK(mmgan_gunzip(ctx, gz, n, &out, &on) == MMGAN_ERR_FORMAT && strstr(mmgan_ctx_error(ctx), "length"),
          "bad length reported: %s", mmgan_ctx_error(ctx));
    gz[n - 4] ^= 1;
    CHECK(mmgan_gunzip(ctx, gz, n - 20, &out, &on) == MMGAN_ERR_FORMAT, "truncated gzip: %s", mmgan_ctx_error(ctx));
    gz[0] = 0x1e;
    CHECK(mmgan_gunzip(ctx, gz, n, &out, &on) == MMGAN_ERR_FORMAT && strstr(mmgan_ctx_error(ctx), "magic"), "bad gzip magic");
    gz[0] = 0x1f;
    test_corruption(gz, n);
    {
        /* Two members (gzip -c a b > ab.gz): their data concatenated. */
        unsigned char two[1024], *o2 = NULL;
        size_t n2 = make_gzip(two, vec_dynamic, sizeof vec_dynamic, VEC_DYNAMIC_CRC, VEC_DYNAMIC_LEN), on2 = 0;
        n2 += make_gzip(two + n2, vec_fixed, sizeof vec_fixed, VEC_FIXED_CRC, VEC_FIXED_LEN);
        CHECK(mmgan_gunzip(ctx, two, n2, &o2, &on2) == MMGAN_OK && on2 == VEC_DYNAMIC_LEN + VEC_FIXED_LEN &&
              mmgan_crc32(0, o2, VEC_DYNAMIC_LEN) == VEC_DYNAMIC_CRC &&
              mmgan_crc32(0, o2 + VEC_DYNAMIC_LEN, VEC_FIXED_LEN) == VEC_FIXED_CRC,
              "two gzip members concatenated: %s", mmgan_ctx_error(ctx));
        mmgan_free(ctx, o2); o2 = NULL;
        {
            /* Twenty members: the output grows by doubling, every part in place. */
            unsigned char *many = (unsigned char *)malloc(20 * 400);
            size_t nm = 0;
            int k, ok = 1;
            for (k = 0; k < 20; k++) nm += make_gzip(many + nm, vec_fixed, sizeof vec_fixed, VEC_FIXED_CRC, VEC_FIXED_LEN);
            ok = mmgan_gunzip(ctx, many, nm, &o2, &on2) == MMGAN_OK && on2 == 20 * VEC_FIXED_LEN;
            for (k = 0; ok && k < 20; k++) ok = mmgan_crc32(0, o2 + k * VEC_FIXED_LEN, VEC_FIXED_LEN) == VEC_FIXED_CRC;
            CHECK(ok, "twenty gzip members concatenated: %s", mmgan_ctx_error(ctx));
            mmgan_free(ctx, o2); o2 = NULL;
            free(many);
        }
        /* Bytes after a member that are no member are refused, not dropped. */
        memcpy(two + n, "GARBAGE!", 8);
        memcpy(two, gz, n);
        CHECK(mmgan_gunzip(ctx, two, n + 8, &o2, &on2) == MMGAN_ERR_FORMAT && !o2 &&
              strstr(mmgan_ctx_error(ctx), "8 bytes after the gzip data"), "trailing garbage: %s", mmgan_ctx_error(ctx));
        CHECK(mmgan_gunzip(ctx, two, n + 1, &o2, &on2) == MMGAN_ERR_FORMAT && !o2, "one trailing byte refused");
    }
    {
        /* FHCRC: the low 16 bits of the CRC-32 of the header before it. */
        unsigned char h[1024], *o3 = NULL;
        size_t n3 = make_gzip(h + 2, vec_fixed, sizeof vec_fixed, VEC_FIXED_CRC, VEC_FIXED_LEN), on3 = 0;
        uint32_t c16;
        memmove(h, h + 2, 10);                 /* header, then 2 bytes of header CRC, then the rest */
        h[3] |= 2;
        c16 = mmgan_crc32(0, h, 10) & 0xffffu;
        h[10] = (unsigned char)c16; h[11] = (unsigned char)(c16 >> 8);
        CHECK(mmgan_gunzip(ctx, h, n3 + 2, &o3, &on3) == MMGAN_OK && on3 == VEC_FIXED_LEN, "header CRC accepted: %s",
              mmgan_ctx_error(ctx));
        mmgan_free(ctx, o3); o3 = NULL;
        h[11] ^= 0x40;
        CHECK(mmgan_gunzip(ctx, h, n3 + 2, &o3, &on3) == MMGAN_ERR_FORMAT && strstr(mmgan_ctx_error(ctx), "header CRC"),
              "bad header CRC refused: %s", mmgan_ctx_error(ctx));
    }
    {
        /* A dynamic block whose distance code is incomplete beyond the one
         * allowed case (a single 1-bit code); zlib refuses it too. */
        static const unsigned char inc[106] = {
            0x05, 0xc1, 0x01, 0x01, 0x00, 0x00, 0x08, 0x80, 0xa0, 0xad, 0xea, 0x89, 0x6a, 0x7d, 0x05, 0xc1, 0x01, 0x01,
            0x00, 0x00, 0x08, 0x80, 0xa0, 0xff, 0xff, 0xff, 0x31, 0x49, 0x49, 0x80, 0x61, 0x18, 0x86, 0x61, 0x18, 0x86,
            0x61, 0x18, 0x86, 0x61, 0x18, 0x86, 0x61, 0x18, 0x86, 0x61, 0x18, 0x86, 0x7b, 0xb3, 0x37, 0x7b, 0xb3, 0x37,
            0x7b, 0xb3, 0x37, 0x49, 0x00, 0x00, 0x00, 0x6b, 0x00, 0x49, 0x89, 0x37, 0x7b, 0xb3, 0x37, 0x7b, 0x01, 0x06,
            0x7b, 0xb3, 0xfa, 0xcd, 0x09, 0xc5, 0x10, 0x00, 0x49, 0x00, 0x00, 0x37, 0x7b, 0xb3, 0x37, 0x7b, 0x00, 0x6b,
            0x00, 0xb3, 0x37, 0x85, 0x4c, 0xc8, 0x84, 0xff, 0xeb, 0x4c, 0x0c, 0x49, 0x89, 0x6a, 0x7d, 0x09};
        unsigned char *o4 = NULL;
        size_t on4 = 0;
        CHECK(mmgan_inflate(ctx, inc, sizeof inc, &o4, &on4) == MMGAN_ERR_FORMAT && !o4 &&
              strstr(mmgan_ctx_error(ctx), "distance"), "incomplete distance code refused: %s", mmgan_ctx_error(ctx));
    }
    mmgan_ctx_clear_error(ctx);
}

/* A gzip'd IDX may not outgrow its header: 24 bytes of header and data
 * declared, 1032 stored (a 3 MB bomb of zeros had been inflated to 6 GB
 * before its header was read); a stream with no IDX header stops at its
 * header too; the same data with the size it declares is read. */
static void test_idx_gzip_limit(void)
{
    unsigned char raw[1032], def[1040], gz[1100];
    size_t len, n;
    mmgan_idx idx;
    int k;
    for (k = 0; k < 4; k++) {
        memset(raw, 7, sizeof raw);
        memcpy(raw, "\0\0\x08\x01\0\0\0\x10", 8);     /* ndim 1, 16 bytes of data */
        if (k == 1) raw[2] = 0;                        /* element type 0 */
        if (k == 3) raw[7] = 3;                        /* 11 bytes in all: shorter than a header can be */
        len = k == 2 ? 24 : k == 3 ? 11 : sizeof raw;
        def[0] = 1;                                    /* a final stored block */
        def[1] = (unsigned char)len; def[2] = (unsigned char)(len >> 8);
        def[3] = (unsigned char)~len; def[4] = (unsigned char)(~len >> 8);
        memcpy(def + 5, raw, len);
        n = make_gzip(gz, def, len + 5, mmgan_crc32(0, raw, len), (uint32_t)len);
        if (k == 0)
            CHECK(mmgan_idx_parse(ctx, gz, n, &idx) == MMGAN_ERR_FORMAT && idx.data == NULL &&
                  strstr(mmgan_ctx_error(ctx), "longer than the 24 bytes"), "data past the header's size: %s",
                  mmgan_ctx_error(ctx));
        if (k == 1)
            CHECK(mmgan_idx_parse(ctx, gz, n, &idx) == MMGAN_ERR_FORMAT && strstr(mmgan_ctx_error(ctx), "0x00"),
                  "no IDX header: %s", mmgan_ctx_error(ctx));
        if (k == 2)
            CHECK(mmgan_idx_parse(ctx, gz, n, &idx) == MMGAN_OK && idx.count == 16 && idx.data[15] == 7,
                  "the declared size reads: %s", mmgan_ctx_error(ctx));
        if (k == 3)
            CHECK(mmgan_idx_parse(ctx, gz, n, &idx) == MMGAN_OK && idx.count == 3 && idx.data[2] == 7,
                  "an IDX of 11 bytes reads: %s", mmgan_ctx_error(ctx));
        mmgan_idx_free(ctx, &idx);
    }
    mmgan_ctx_clear_error(ctx);
}

static void test_idx_errors(void)
{
    /* A 2 x 3 IDX array of bytes. */
    unsigned char ok[4 + 8 + 6] = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6}, b[sizeof ok];
    mmgan_idx idx;
    CHECK(mmgan_idx_parse(ctx, ok, sizeof ok, &idx) == MMGAN_OK && idx.ndim == 2 && idx.dims[1] == 3 &&
          idx.count == 6 && idx.data[5] == 6, "valid IDX");
    mmgan_idx_free(ctx, &idx);
    memcpy(b, ok, sizeof b); b[1] = 1;
    CHECK(mmgan_idx_parse(ctx, b, sizeof b, &idx) == MMGAN_ERR_FORMAT && strstr(mmgan_ctx_error(ctx), "magic"), "bad magic");
    memcpy(b, ok, sizeof b); b[2] = 0x0d;
    CHECK(mmgan_idx_parse(ctx, b, sizeof b, &idx) == MMGAN_ERR_FORMAT && strstr(mmgan_ctx_error(ctx), "0x0d"), "float IDX refused");
    memcpy(b, ok, sizeof b); b[3] = 7;
    CHECK(mmgan_idx_parse(ctx, b, sizeof b, &idx) == MMGAN_ERR_FORMAT && strstr(mmgan_ctx_error(ctx), "7 dimensions"),
          "wrong dimension count: %s", mmgan_ctx_error(ctx));
    memcpy(b, ok, sizeof b); b[3] = 0;
    CHECK(mmgan_idx_parse(ctx, b, sizeof b, &idx) == MMGAN_ERR_FORMAT, "zero dimensions");
    memcpy(b, ok, sizeof b); b[11] = 4;
    CHECK(mmgan_idx_parse(ctx, b, sizeof b, &idx) == MMGAN_ERR_FORMAT && strstr(mmgan_ctx_error(ctx), "promises 8 bytes"),
          "size mismatch: %s", mmgan_ctx_error(ctx));
    CHECK(mmgan_idx_parse(ctx, ok, sizeof ok - 1, &idx) == MMGAN_ERR_FORMAT, "truncated data");
    CHECK(mmgan_idx_parse(ctx, ok, 6, &idx) == MMGAN_ERR_FORMAT && strstr(mmgan_ctx_error(ctx), "truncated header"), "truncated header");
    memcpy(b, ok, sizeof b); b[4] = 0x80;
    CHECK(mmgan_idx_parse(ctx, b, sizeof b, &idx) == MMGAN_ERR_FORMAT, "huge dimension");
    memcpy(b, ok, sizeof b); b[7] = 0;
    CHECK(mmgan_idx_parse(ctx, b, sizeof b, &idx) == MMGAN_ERR_FORMAT, "zero-sized dimension");
    CHECK(mmgan_idx_load(ctx, "no/such/file.idx", &idx) == MMGAN_ERR_IO && strstr(mmgan_ctx_error(ctx), "no/such/file.idx"),
          "missing file named: %s", mmgan_ctx_error(ctx));
    mmgan_ctx_clear_error(ctx);
}

/* The shipped test set, against values computed with Python's gzip/zlib:
 * CRC-32 0x91373bdf of the 7840016 uncompressed bytes (MD5 2646ac64...),
 * pixel sum 264923200, label sum 44434, first labels 7 2 1 0 4 1 4 9. */
static void test_mnist(void)
{
    mmgan_dataset ds;
    mmgan_idx im;
    mmgan_batcher b;
    mmgan_rng rng;
    unsigned char *raw, *out;
    size_t n, on, i;
    double sum = 0;
    long lsum = 0;
    static const unsigned char first[8] = {7, 2, 1, 0, 4, 1, 4, 9};
    if (mmgan_read_file(ctx, "data/mnist/t10k-images-idx3-ubyte.gz", &raw, &n) != MMGAN_OK) {
        CHECK(0, "shipped MNIST: %s", mmgan_ctx_error(ctx));
        return;
    }
    CHECK(mmgan_gunzip(ctx, raw, n, &out, &on) == MMGAN_OK && on == 7840016 && mmgan_crc32(0, out, on) == 0x91373bdfu,
          "t10k images: %lu bytes", (unsigned long)on);
    mmgan_free(ctx, out);
    mmgan_free(ctx, raw);
    CHECK(mmgan_idx_load(ctx, "data/mnist/t10k-images-idx3-ubyte.gz", &im) == MMGAN_OK && im.ndim == 3 &&
          im.dims[0] == 10000 && im.dims[1] == 28 && im.dims[2] == 28, "t10k IDX header");
    for (i = 0; i < im.count; i++) sum += im.data[i];
    CHECK(sum == 264923200.0, "t10k pixel sum %.0f", sum);
    mmgan_idx_free(ctx, &im);
    CHECK(mmgan_mnist_load(ctx, "data/mnist/t10k-images-idx3-ubyte.gz", "data/mnist/t10k-labels-idx1-ubyte.gz",
                           -1.0f, 1.0f, &ds) == MMGAN_OK, "mnist_load: %s", mmgan_ctx_error(ctx));
    for (i = 0; i < 10000; i++) lsum += ds.labels[i];
    CHECK(lsum == 44434 && memcmp(ds.labels, first, 8) == 0, "labels");
    CHECK(ds.n == 10000 && ds.images[0] == -1.0f && ds.images[28 * 7 + 7] > -1.0f, "scaled to [-1, 1]");
    /* Batches: an epoch visits every sample once. */
    mmgan_rng_seed(&rng, 1, 1);
    if (mmgan_batcher_init(ctx, &b, &ds, 64, &rng) == MMGAN_OK) {
        float *bx = (float *)malloc(64 * 784 * sizeof(float));
        unsigned char bl[64];
        int *seen = (int *)calloc(10000, sizeof(int)), steps = 0, starts = 0, k, dup = 0;
        while (b.epoch == 0 && steps < 1000) {
            starts += mmgan_batcher_next(&b, bx, bl);
            if (b.epoch) break;
            for (k = 0; k < 64; k++) seen[b.order[b.pos - 64 + k]]++;
            steps++;
        }
        for (k = 0; k < 10000; k++) dup += seen[k] > 1;
        CHECK(steps == 10000 / 64 && dup == 0 && starts == 2, "one epoch: %d batches, %d repeats, %d epoch starts", steps, dup, starts);
        CHECK(bl[0] == ds.labels[b.order[b.pos - 64]], "labels follow their images");
        free(bx); free(seen);
        mmgan_batcher_free(ctx, &b);
    }
    mmgan_dataset_free(ctx, &ds);
}

/* PNG: signature, chunk CRCs, and the pixels back through inflate. */
static void test_png(void)
{
    unsigned char pix[5 * 3 * 3], *png, *raw;
    size_t n, rn, o = 8;
    int i, crc_ok = 1, y;
    for (i = 0; i < (int)sizeof pix; i++) pix[i] = (unsigned char)(i * 37);
    CHECK(mmgan_png_encode(ctx, pix, 5, 3, 3, &png, &n) == MMGAN_OK, "png encode");
    CHECK(memcmp(png, "\211PNG\r\n\032\n", 8) == 0, "PNG signature");
    while (o + 12 <= n) {
        uint32_t len = (uint32_t)png[o] << 24 | (uint32_t)png[o + 1] << 16 | (uint32_t)png[o + 2] << 8 | png[o + 3];
        uint32_t crc = (uint32_t)png[o + 8 + len] << 24 | (uint32_t)png[o + 9 + len] << 16 | (uint32_t)png[o + 10 + len] << 8 | png[o + 11 + len];
        crc_ok &= crc == mmgan_crc32(0, png + o + 4, len + 4);
        if (memcmp(png + o + 4, "IDAT", 4) == 0) {
            /* zlib: CMF/FLG, a raw deflate stream, Adler-32 */
            CHECK(((png[o + 8] << 8) | png[o + 9]) % 31 == 0, "zlib header check bits");
            CHECK(mmgan_inflate(ctx, png + o + 10, len - 6, &raw, &rn) == MMGAN_OK && rn == 3 * (5 * 3 + 1), "IDAT inflates");
            for (y = 0; y < 3; y++) CHECK(raw[y * 16] == 0 && memcmp(raw + y * 16 + 1, pix + y * 15, 15) == 0, "PNG row %d", y);
            mmgan_free(ctx, raw);
        }
        if (memcmp(png + o + 4, "IHDR", 4) == 0) CHECK(png[o + 16] == 8 && png[o + 17] == 2, "8-bit RGB header");
        o += 12 + len;
    }
    CHECK(crc_ok && o == n, "chunk CRCs and layout");
    mmgan_free(ctx, png);
    CHECK(mmgan_png_encode(ctx, pix, 0, 3, 3, &png, &n) == MMGAN_ERR_INVALID, "empty image refused");
    CHECK(mmgan_png_encode(ctx, pix, 5, 3, 2, &png, &n) == MMGAN_ERR_INVALID, "2 channels refused");
    {
        float img[2 * 4] = {-1, 1, 0, 0.5f, 1, 1, -1, -1};
        unsigned char g[7 * 4];
        int gw, gh;
        CHECK(mmgan_image_grid(ctx, img, 2, 1, 2, 2, 2, -1, 1, g, &gw, &gh) == MMGAN_OK && gw == 7 && gh == 4, "grid size");
        CHECK(g[1 * 7 + 1] == 0 && g[1 * 7 + 2] == 255 && g[2 * 7 + 1] == 128 && g[1 * 7 + 4] == 255 && g[0] == 0, "grid pixels");
    }
    mmgan_ctx_clear_error(ctx);
}

static void test_atomic_write(void)
{
    char path[600];
    unsigned char *back;
    size_t n;
    test_path(path, sizeof path, "test_io_atomic.bin");
    CHECK(mmgan_write_file(ctx, path, "first", 5) == MMGAN_OK, "write: %s", mmgan_ctx_error(ctx));
    CHECK(mmgan_write_file(ctx, "build/no/such/dir/x.bin", "x", 1) == MMGAN_ERR_IO, "unwritable path reported");
    CHECK(mmgan_read_file(ctx, path, &back, &n) == MMGAN_OK && n == 5 && memcmp(back, "first", 5) == 0, "read back");
    mmgan_free(ctx, back);
    remove(path);
#ifdef MMGAN__HAVE_STAT
    {   /* A device is written, not replaced by a file renamed over it: as
         * root, saving to /dev/full reported success and left a PNG there. */
        struct stat sb;
        if (stat("/dev/null", &sb) == 0 && S_ISCHR(sb.st_mode)) {
            CHECK(mmgan_write_file(ctx, "/dev/null", "x", 1) == MMGAN_OK && stat("/dev/null", &sb) == 0 &&
                  S_ISCHR(sb.st_mode), "a save to /dev/null: %s", mmgan_ctx_error(ctx));
        }
        if (stat("/dev/zero", &sb) == 0 && S_ISCHR(sb.st_mode)) {   /* read until memory ran out */
            unsigned char *z = NULL;
            size_t zn = 0;
            CHECK(mmgan_read_file(ctx, "/dev/zero", &z, &zn) == MMGAN_ERR_IO && z == NULL &&
                  strstr(mmgan_ctx_error(ctx), "MMGAN_READ_MAX") != NULL, "/dev/zero refused: %s", mmgan_ctx_error(ctx));
        }
        if (stat("/dev/full", &sb) == 0 && S_ISCHR(sb.st_mode)) {
            mmgan_status st = mmgan_write_file(ctx, "/dev/full", "x", 1);
            const char *e = mmgan_ctx_error(ctx);
            CHECK(st == MMGAN_ERR_IO && strstr(e, "'/dev/full'") != NULL && strstr(e, ".tmp") == NULL &&
                  stat("/dev/full", &sb) == 0 && S_ISCHR(sb.st_mode), "a save to /dev/full fails, the device stays: %s", e);
        }
    }
#endif
    mmgan_ctx_clear_error(ctx);
}

static void test_svg(void)
{
    double a[4] = {1, 2, 3, 2.5}, b[4] = {0.5, 0.7, 1, 4};
    const double *ys[2];
    const char *labels[2] = {"real <E>", "fake & co"};
    unsigned char *txt = NULL;
    size_t n = 0;
    char path[600];
    test_path(path, sizeof path, "test_io.svg");
    ys[0] = a; ys[1] = b;
    CHECK(mmgan_svg_curves(ctx, path, "curves \"quoted\"", "epoch", 2, labels, ys, 4) == MMGAN_OK,
          "svg: %s", mmgan_ctx_error(ctx));
    CHECK(mmgan_read_file(ctx, path, &txt, &n) == MMGAN_OK, "svg read back: %s", mmgan_ctx_error(ctx));
    if (txt) {
        txt[n] = 0;
        CHECK(!strncmp((char *)txt, "<svg", 4) && strstr((char *)txt, "</svg>") && strstr((char *)txt, "real &lt;E&gt;") &&
              strstr((char *)txt, "fake &amp; co") && strstr((char *)txt, "&quot;quoted&quot;"), "SVG text escaped");
        mmgan_free(ctx, txt);
    }
    CHECK(mmgan_svg_curves(ctx, path, "", "", 0, labels, ys, 4) == MMGAN_ERR_INVALID, "no curves refused");
    remove(path);
    mmgan_ctx_clear_error(ctx);
}

/* Inputs that used to crash or mislead: a grid wider than an int (the size
 * wrapped, then a row was written past the buffer), a directory (glibc opens
 * it and tells a size of LONG_MAX), a /proc file (tells 0 and has more), and
 * a batcher whose init failed. */
static void test_bad_inputs(void)
{
    float img[4] = {0, 0, 0, 0};
    int gw = 0, gh = 0;
    unsigned char *d = NULL;
    size_t n = 0;
    mmgan_batcher b;
    mmgan_dataset ds;
    FILE *f;
    CHECK(mmgan_image_grid(ctx, img, 4, 1, 1, (1 << 30) - 1, 4, 0, 1, NULL, &gw, &gh) == MMGAN_ERR_INVALID &&
          strstr(mmgan_ctx_error(ctx), "too large a grid") != NULL, "a grid wider than an int refused: %s",
          mmgan_ctx_error(ctx));
    CHECK(mmgan_image_grid(ctx, img, INT_MAX, 1, 1, 1, 1, 0, 1, NULL, &gw, &gh) == MMGAN_ERR_INVALID,
          "a grid taller than an int refused");
    CHECK(mmgan_read_file(ctx, "tests", &d, &n) == MMGAN_ERR_IO && d == NULL && strstr(mmgan_ctx_error(ctx), "tests"),
          "a directory is an I/O error naming it: %s", mmgan_ctx_error(ctx));
    if ((f = fopen("/proc/self/status", "rb")) != NULL) {
        fclose(f);
        CHECK(mmgan_read_file(ctx, "/proc/self/status", &d, &n) == MMGAN_OK && n > 0 && memchr(d, ':', n) != NULL,
              "a /proc file is read whole (%lu bytes)", (unsigned long)n);
        mmgan_free(ctx, d);
    }
    memset(&ds, 0, sizeof ds);
    ds.n = 2; ds.c = ds.h = ds.w = 1; ds.images = img;
    CHECK(mmgan_batcher_init(ctx, &b, &ds, 5, NULL) == MMGAN_ERR_INVALID, "a batch larger than the data refused");
    CHECK(mmgan_batcher_next(&b, img, NULL) == -1, "next on a batcher whose init failed: -1");
    CHECK(mmgan_batcher_next(NULL, img, NULL) == -1, "next on NULL: -1");
    /* Structs left as the stack had them: a failed init or load clears its
     * output, so that next, and freeing, are safe after any error. */
    {
        mmgan_dataset bad;
        mmgan_idx ix;
        unsigned char junk[3] = {1, 2, 3};
        memset(&b, 0xA5, sizeof b);
        CHECK(mmgan_batcher_init(ctx, &b, NULL, 5, NULL) == MMGAN_ERR_INVALID && b.order == NULL && b.ds == NULL,
              "a batcher init refused for a NULL dataset leaves the batcher cleared");
        CHECK(mmgan_batcher_next(&b, img, NULL) == -1, "next after that init: -1");
        mmgan_batcher_free(ctx, &b);
        memset(&bad, 0xA5, sizeof bad);
        CHECK(mmgan_mnist_load(ctx, "no/such/images.gz", NULL, 0.0f, 1.0f, &bad) == MMGAN_ERR_IO &&
              bad.images == NULL && bad.labels == NULL, "a failed MNIST load leaves the dataset cleared");
        mmgan_dataset_free(ctx, &bad);
        memset(&bad, 0xA5, sizeof bad);
        CHECK(mmgan_dataset_from_idx(ctx, NULL, NULL, 0.0f, 1.0f, &bad) == MMGAN_ERR_INVALID && bad.images == NULL,
              "dataset_from_idx without images leaves the dataset cleared");
        mmgan_dataset_free(ctx, &bad);
        memset(&ix, 0xA5, sizeof ix);
        CHECK(mmgan_idx_load(ctx, "no/such/file.idx", &ix) == MMGAN_ERR_IO && ix.data == NULL,
              "a failed IDX load leaves the array cleared");
        mmgan_idx_free(ctx, &ix);
        memset(&ix, 0xA5, sizeof ix);
        CHECK(mmgan_idx_parse(ctx, junk, sizeof junk, &ix) != MMGAN_OK && ix.data == NULL,
              "a failed IDX parse leaves the array cleared");
        mmgan_idx_free(ctx, &ix);
    }
    mmgan_ctx_clear_error(ctx);
}

int main(int argc, char **argv)
{
    (void)argc;
    test_suite = "test_io";
    test_set_dir(argv[0]);
    ctx = mmgan_ctx_new(NULL);
    test_inflate_vectors();
    test_gzip_errors();
    test_idx_gzip_limit();
    test_idx_errors();
    test_mnist();
    test_png();
    test_atomic_write();
    test_svg();
    test_bad_inputs();
    mmgan_ctx_free(ctx);
    return test_summary();
}
