/* The generator of examples/gan_mnist.c, shared with examples/sample.c so a
 * checkpoint is read back into exactly the network that wrote it: parameter
 * names, shapes, initializers and ops.  Include after mmgan.h. */
#ifndef GAN_MNIST_MODEL_H
#define GAN_MNIST_MODEL_H

#define FEAT (128 * 7 * 7)
#define MODEL "mmgan.gan_mnist.dcgan.v1"   /* the checkpoint's model tag */

/* The parameters, PyTorch-style names.  Running statistics are parameters
 * too (saved with the weights), but not trained. */
enum { G_FC_W, G_BN0_W, G_BN0_B, G_BN0_MEAN, G_BN0_VAR, G_DC1_W, G_BN1_W, G_BN1_B, G_BN1_MEAN, G_BN1_VAR,
       G_DC2_W, G_DC2_B, NG };
typedef struct pdef { const char *name; int ndim, shape[4]; mmgan_init init; float a; } pdef;
static const pdef GDEF[NG] = {   /* G.fc.weight's second axis is nz */
    {"G.fc.weight", 2, {FEAT, 0}, MMGAN_INIT_NORMAL, 0.02f},
    {"G.bn0.weight", 1, {FEAT}, MMGAN_INIT_CONST, 1}, {"G.bn0.bias", 1, {FEAT}, MMGAN_INIT_ZEROS, 0},
    {"G.bn0.running_mean", 1, {FEAT}, MMGAN_INIT_ZEROS, 0}, {"G.bn0.running_var", 1, {FEAT}, MMGAN_INIT_CONST, 1},
    {"G.deconv1.weight", 4, {128, 64, 4, 4}, MMGAN_INIT_NORMAL, 0.02f},
    {"G.bn1.weight", 1, {64}, MMGAN_INIT_CONST, 1}, {"G.bn1.bias", 1, {64}, MMGAN_INIT_ZEROS, 0},
    {"G.bn1.running_mean", 1, {64}, MMGAN_INIT_ZEROS, 0}, {"G.bn1.running_var", 1, {64}, MMGAN_INIT_CONST, 1},
    {"G.deconv2.weight", 4, {64, 1, 4, 4}, MMGAN_INIT_NORMAL, 0.02f}, {"G.deconv2.bias", 1, {1}, MMGAN_INIT_ZEROS, 0}};

/* Batch norm with learned scale and shift at p[i], p[i+1] and running statistics
 * at p[i+2], p[i+3]: batch statistics (updating the running ones) when training. */
static mmgan_node bn(mmgan_graph *g, mmgan_node x, mmgan_param **p, int i, int training)
{
    return mmgan_batch_norm(g, x, mmgan_parameter(g, p[i]), mmgan_parameter(g, p[i + 1]), p[i + 2], p[i + 3], 0.1f,
                            1e-5f, training);
}

/* The generator: z [B, nz] -> images [B, 1, 28, 28] in [-1, 1]. */
static mmgan_node generator(mmgan_graph *g, mmgan_param **p, mmgan_node z, int training)
{
    int zs[4] = {1, 1, 1, 1}, img[4] = {1, 128, 7, 7};
    mmgan_node h;
    mmgan_node_shape(g, z, zs);
    img[0] = zs[0];
    h = mmgan_linear(g, z, mmgan_parameter(g, p[G_FC_W]), MMGAN_NONE);   /* no bias: BN follows */
    h = mmgan_reshape(g, mmgan_relu(g, bn(g, h, p, G_BN0_W, training)), 4, img);
    h = mmgan_conv_transpose2d(g, h, mmgan_parameter(g, p[G_DC1_W]), 2, 1, 0);   /* 14x14 */
    h = mmgan_relu(g, bn(g, h, p, G_BN1_W, training));
    h = mmgan_conv_transpose2d(g, h, mmgan_parameter(g, p[G_DC2_W]), 2, 1, 0);   /* 28x28 */
    return mmgan_tanh(g, mmgan_bias_add(g, h, mmgan_parameter(g, p[G_DC2_B])));
}

#endif
