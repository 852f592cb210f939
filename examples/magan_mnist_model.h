/* The generator of examples/magan_mnist.c (appendix B.1 of the MAGAN paper),
 * shared with tools/mnist_eval.c so a checkpoint is read back into exactly
 * the network that wrote it.  Include after mmgan.h. */
#ifndef MAGAN_MNIST_MODEL_H
#define MAGAN_MNIST_MODEL_H

#define MAGAN_NZ 50
#define MAGAN_MODEL "mmgan.magan_mnist.v1"   /* the checkpoint's model tag */

enum { MAGAN_G_DC1_W, MAGAN_G_DC1_B, MAGAN_G_DC2_W, MAGAN_G_DC2_B, MAGAN_G_DC3_W, MAGAN_G_DC3_B, MAGAN_NG };
typedef struct magan_pdef { const char *name; int ndim, shape[4]; mmgan_init init; float a; } magan_pdef;
/* He-normal before relu, Xavier-uniform before the sigmoid, zero biases: the
 * reference code's initialization. */
static const magan_pdef MAGAN_GDEF[MAGAN_NG] = {
    {"G.deconv1.weight", 4, {MAGAN_NZ, 128, 7, 7}, MMGAN_INIT_HE_NORMAL, 0},
    {"G.deconv1.bias", 1, {128}, MMGAN_INIT_ZEROS, 0},
    {"G.deconv2.weight", 4, {128, 64, 4, 4}, MMGAN_INIT_HE_NORMAL, 0},
    {"G.deconv2.bias", 1, {64}, MMGAN_INIT_ZEROS, 0},
    {"G.deconv3.weight", 4, {64, 1, 4, 4}, MMGAN_INIT_XAVIER_UNIFORM, 1},
    {"G.deconv3.bias", 1, {1}, MMGAN_INIT_ZEROS, 0}};

/* z [B, 50, 1, 1] -> 7x7x128 -> 14x14x64 -> 28x28x1 in [0, 1], transposed convs. */
static mmgan_node magan_generator(mmgan_graph *g, mmgan_param *const *p, mmgan_node z)
{
    mmgan_node h = mmgan_conv_transpose2d(g, z, mmgan_parameter(g, p[0]), 1, 0, 0);
    h = mmgan_relu(g, mmgan_bias_add(g, h, mmgan_parameter(g, p[1])));
    h = mmgan_conv_transpose2d(g, h, mmgan_parameter(g, p[2]), 2, 1, 0);
    h = mmgan_relu(g, mmgan_bias_add(g, h, mmgan_parameter(g, p[3])));
    h = mmgan_conv_transpose2d(g, h, mmgan_parameter(g, p[4]), 2, 1, 0);
    return mmgan_sigmoid(g, mmgan_bias_add(g, h, mmgan_parameter(g, p[5])));
}

#endif
