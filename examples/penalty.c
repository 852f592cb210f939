/* A WGAN-GP style gradient penalty on a tiny conv critic, built once as a
 * graph and run many times: the gradient of || dD(x)/dx ||_2 with respect to
 * the critic's weights is a second derivative, built by calling mmgan_grad
 * on a graph that already holds a gradient.
 *   cc -O2 -march=native examples/penalty.c -o build/penalty -lm && ./build/penalty */
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    mmgan_ctx *ctx;
    mmgan_rng rng;
    int xs[4] = {8, 1, 28, 28}, w1s[4] = {16, 1, 4, 4}, b1s[1] = {16}, w2s[2] = {1, 16 * 14 * 14};
    static float x[8 * 28 * 28];
    if (argc > 1) {   /* no options: five steps on random inputs */
        int help = !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h");
        if (!help) fprintf(stderr, "penalty: unknown argument '%s'\n", argv[1]);
        fputs("usage: penalty\n  five descent steps of a small conv critic on its WGAN-GP penalty, printing the\n"
              "  penalty at each; no options\n", help ? stdout : stderr);
        return help ? 0 : 2;
    }
    ctx = mmgan_ctx_new(NULL);
    if (!ctx) return 1;
    mmgan_rng_seed(&rng, 1, 0);
    mmgan_rng_fill_uniform(&rng, x, 8 * 28 * 28, -1.0f, 1.0f);

    /* Parameters live outside graphs; initialize as the papers' code does. */
    mmgan_param *w1 = mmgan_param_new(ctx, "w1", 4, w1s), *b1 = mmgan_param_new(ctx, "b1", 1, b1s);
    mmgan_param *w2 = mmgan_param_new(ctx, "w2", 2, w2s);
    mmgan_param_init(w1, MMGAN_INIT_HE_NORMAL, 0.2f, &rng);
    mmgan_param_init(w2, MMGAN_INIT_XAVIER_UNIFORM, 1.0f, &rng);

    /* D(x) = linear(leaky_relu(conv(x) + b1)) */
    mmgan_graph *g = mmgan_graph_new(ctx);
    mmgan_node in = mmgan_input(g, "x", 4, xs);
    mmgan_node h = mmgan_conv2d(g, in, mmgan_parameter(g, w1), 2, 1);
    h = mmgan_leaky_relu(g, mmgan_bias_add(g, h, mmgan_parameter(g, b1)), 0.2f);
    mmgan_node d = mmgan_linear(g, mmgan_flatten(g, h), mmgan_parameter(g, w2), MMGAN_NONE);

    /* penalty = mean((||dD/dx||_2 - 1)^2), per sample over C, H, W */
    mmgan_node gx, norm, pen, grads[3], params[3];
    mmgan_grad(g, d, 1, &in, &gx);
    norm = mmgan_sqrt(g, mmgan_affine(g, mmgan_sum_per_sample(g, mmgan_square(g, gx)), 1.0f, 1e-12f));
    pen = mmgan_mean(g, mmgan_square(g, mmgan_affine(g, norm, 1.0f, -1.0f)));
    params[0] = mmgan_parameter(g, w1); params[1] = mmgan_parameter(g, b1); params[2] = mmgan_parameter(g, w2);
    mmgan_grad(g, pen, 3, params, grads);            /* the double backward */
    if (mmgan_graph_status(g) != MMGAN_OK) {         /* one check for the whole build */
        fprintf(stderr, "%s\n", mmgan_ctx_error(ctx));
        return 1;
    }

    mmgan_node targets[2] = {pen, grads[0]};
    mmgan_plan *plan = mmgan_plan_new(g, 2, targets);  /* ordered, pruned, buffers shared */
    mmgan_graph_feed(g, in, x);
    for (int step = 0; step < 5; step++) {           /* a few steps of plain gradient descent */
        if (!plan || mmgan_plan_run(plan) != MMGAN_OK) {
            fprintf(stderr, "%s\n", mmgan_ctx_error(ctx));
            return 1;
        }
        const float *gw = mmgan_plan_value(plan, grads[0]);
        mmgan_tensor *w = mmgan_param_tensor(w1);
        printf("step %d: penalty %.6f\n", step, mmgan_plan_value(plan, pen)[0]);
        mmgan_vec_axpy(w->numel, -0.5f, gw, w->data);
    }
    mmgan_plan_free(plan);
    mmgan_graph_free(g);
    mmgan_param_free(w1); mmgan_param_free(b1); mmgan_param_free(w2);
    mmgan_ctx_free(ctx);
    return 0;
}
