/* energy_curves: the mean real and fake energy per epoch of several
 * examples/magan_mnist runs (MAGAN and its EBGAN baselines) in one SVG, like
 * Figure 3 of the MAGAN paper.  The curves come from the runs' checkpoints.
 *
 *   ./build/energy_curves --out energy.svg MAGAN=runs/magan_20/magan.safetensors \
 *       "EBGAN 10"=runs/ebgan_10_20/magan.safetensors
 *
 * At most 4 runs (8 curves); the plot spans the shortest run's epochs.  A label
 * ends at the first "=", so it cannot hold one. */
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXRUNS 4

int main(int argc, char **argv)
{
    const char *out = NULL, *title = "Mean energy per epoch: real (E real) and generated (E fake) digits";
    char labels[2 * MAXRUNS][128];
    const char *lp[2 * MAXRUNS];
    double *ys[2 * MAXRUNS] = {0};
    int nruns = 0, n = 0, i, e, status = 1;
    mmgan_ctx *ctx = mmgan_ctx_new(NULL);
    if (!ctx) return 1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *eq;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: energy_curves --out FILE.svg [--title T] LABEL=CHECKPOINT... (1 to %d runs of magan_mnist)\n",
                   MAXRUNS);
            mmgan_ctx_free(ctx);
            return 0;
        }
        if (!strcmp(a, "--out") || !strcmp(a, "--title")) {
            if (i + 1 >= argc) { fprintf(stderr, "energy_curves: %s needs a value\n", a); goto out; }
            if (!strcmp(a, "--out")) out = argv[++i]; else title = argv[++i];
            continue;
        }
        if (!(eq = strchr(a, '=')) || eq == a || a[0] == '-') {
            fprintf(stderr, "energy_curves: '%s' is not LABEL=CHECKPOINT (try --help)\n", a);
            goto out;
        }
        if (nruns == MAXRUNS) { fprintf(stderr, "energy_curves: at most %d runs\n", MAXRUNS); goto out; }
        {
            mmgan_ckpt *ck = mmgan_ckpt_load(ctx, eq + 1);
            const char *ep = ck ? mmgan_ckpt_get_meta(ck, "epoch") : NULL;
            const float *c;
            int epochs = ep ? atoi(ep) : 0, shape[2];
            if (!ck) { fprintf(stderr, "energy_curves: %s\n", mmgan_ctx_error(ctx)); goto out; }
            shape[0] = epochs; shape[1] = 3;
            if (epochs < 1 || !(c = mmgan_ckpt_get(ck, "curves", 2, shape))) {
                fprintf(stderr, "energy_curves: %s holds no energy curves (not a magan_mnist checkpoint after an epoch)\n",
                        eq + 1);
                mmgan_ckpt_free(ck);
                goto out;
            }
            ys[2 * nruns] = (double *)malloc(sizeof(double) * (size_t)epochs);
            ys[2 * nruns + 1] = (double *)malloc(sizeof(double) * (size_t)epochs);
            if (!ys[2 * nruns] || !ys[2 * nruns + 1]) { mmgan_ckpt_free(ck); goto out; }
            for (e = 0; e < epochs; e++) { ys[2 * nruns][e] = c[3 * e]; ys[2 * nruns + 1][e] = c[3 * e + 1]; }
            snprintf(labels[2 * nruns], sizeof labels[0], "%.*s E real", (int)(eq - a > 100 ? 100 : eq - a), a);
            snprintf(labels[2 * nruns + 1], sizeof labels[0], "%.*s E fake", (int)(eq - a > 100 ? 100 : eq - a), a);
            lp[2 * nruns] = labels[2 * nruns];
            lp[2 * nruns + 1] = labels[2 * nruns + 1];
            n = nruns == 0 || epochs < n ? epochs : n;
            nruns++;
            mmgan_ckpt_free(ck);
        }
    }
    if (!out || !nruns) { fprintf(stderr, "energy_curves: give --out and at least one LABEL=CHECKPOINT\n"); goto out; }
    if (mmgan_svg_curves(ctx, out, title, "epoch", 2 * nruns, lp, (const double *const *)ys, n) != MMGAN_OK) {
        fprintf(stderr, "energy_curves: %s\n", mmgan_ctx_error(ctx));
        goto out;
    }
    printf("%d runs, %d epochs -> %s\n", nruns, n, out);
    status = 0;
out:
    for (i = 0; i < 2 * MAXRUNS; i++) free(ys[i]);
    mmgan_ctx_free(ctx);
    return status;
}
