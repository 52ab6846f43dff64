"""Convolutional autoencoder and variational autoencoder (Kingma & Welling, arXiv:1312.6114).

Both models are ``image -> encoder -> code -> decoder -> image`` with the two halves as
nested sub-models named ``"encoder"`` and ``"decoder"``, so that each can be used and
exported alone (``model.get_layer("decoder")``: ``(B, latent_dim) -> (B, H, W, C)``).

Architecture (the Keras VAE example, keras.io/examples/generative/vae, at 28x28x1):
encoder ``Conv2D(32, 3, stride 2) -> Conv2D(64, 3, stride 2) -> Flatten -> Dense(16)``
(ReLU) and a linear code; decoder ``Dense(7*7*64) -> Reshape -> Conv2DTranspose(64, 3,
stride 2) -> Conv2DTranspose(32, 3, stride 2) -> Conv2DTranspose(C, 3)`` with a sigmoid
output. Images are in [0, 1] at both ends.

VAE (arXiv:1312.6114 Sec. 2.4 and Appendix C.2): the encoder gives the mean and log
variance of the Gaussian posterior q(z|x) = N(mu, diag(exp(logvar))); the
:class:`Reparameterize` layer draws ``z = mu + exp(0.5 logvar) * eps``, eps ~ N(0, I),
when training and returns ``mu`` at inference, so the model is deterministic outside
training. The VAE returns ``[reconstruction, z_mean, z_log_var]``; the ELBO (the
reconstruction term and ``KL(q(z|x) || N(0, I))``, :func:`gaussian_kl`) is computed by
the ``representation`` training task (training/tasks_representation.py).
"""
import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras, serializable
from keras_zoo.registry import InputSpec, register_family

layers = keras.layers


def gaussian_kl(z_mean, z_log_var):
    """Per-example ``KL(N(mu, diag(exp(logvar))) || N(0, I))`` in nats, summed over the latent axis.

    ``-0.5 * sum(1 + logvar - mu^2 - exp(logvar))`` (arXiv:1312.6114 Appendix B).
    """
    z_mean, z_log_var = tf.cast(z_mean, tf.float32), tf.cast(z_log_var, tf.float32)
    return -0.5 * tf.reduce_sum(1.0 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var), axis=-1)


def reparameterize(z_mean, z_log_var, eps):
    """``z = mu + exp(0.5 logvar) * eps``: a sample of N(mu, exp(logvar)) differentiable in mu and logvar."""
    return z_mean + tf.exp(0.5 * z_log_var) * eps


@serializable
class Reparameterize(layers.Layer):
    """The reparameterization trick (arXiv:1312.6114 Sec. 2.4) as a layer.

    Call on ``[z_mean, z_log_var]``. With ``training=True``, returns
    ``z_mean + exp(0.5 z_log_var) * eps`` with eps ~ N(0, I) drawn afresh on every call;
    otherwise returns ``z_mean`` (the posterior mean: deterministic inference and export).
    """

    def call(self, inputs, training=None):
        z_mean, z_log_var = inputs
        if not training:
            return tf.identity(z_mean)
        return reparameterize(z_mean, z_log_var, tf.random.normal(tf.shape(z_mean), dtype=z_mean.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return super().get_config()


def _validate(image_size, channels, filters, hidden_units, latent_dim):
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 (grey) or 3 (RGB). Received: channels={channels!r}")
    if (not isinstance(filters, (tuple, list)) or not filters
            or not all(isinstance(f, int) and f > 0 for f in filters)):
        raise ValueError(f"`filters` must be a non-empty sequence of positive ints, one per stride-2 "
                         f"convolution, e.g. (32, 64). Received: filters={filters!r}")
    for key, value in (("hidden_units", hidden_units), ("latent_dim", latent_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{key}` must be a positive int. Received: {key}={value!r}")
    factor = 2 ** len(filters)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < factor \
            or image_size % factor:
        raise ValueError(f"`image_size` must be a positive multiple of {factor} (each of the {len(filters)} "
                         f"stride-2 convolutions halves it; pass e.g. image_size={max(factor, 28 // factor * factor)}"
                         f" or fewer `filters`). Received: image_size={image_size!r}")
    return image_size // factor


def _encoder(image_size, channels, filters, hidden_units, latent_dim, variational, prefix):
    image = layers.Input(shape=(image_size, image_size, channels), name=f"{prefix}_image")
    x = image
    for i, width in enumerate(filters, start=1):
        x = layers.Conv2D(width, 3, strides=2, padding="same", activation="relu", name=f"{prefix}_enc{i}_conv")(x)
    x = layers.Flatten(name=f"{prefix}_enc_flatten")(x)
    x = layers.Dense(hidden_units, activation="relu", name=f"{prefix}_enc_hidden")(x)
    if not variational:
        code = layers.Dense(latent_dim, name=f"{prefix}_enc_code")(x)
        return keras.Model(image, code, name="encoder")
    z_mean = layers.Dense(latent_dim, name=f"{prefix}_enc_z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name=f"{prefix}_enc_z_log_var")(x)
    return keras.Model(image, [z_mean, z_log_var], name="encoder")


def _decoder(base, channels, filters, latent_dim, prefix):
    z = layers.Input(shape=(latent_dim,), name=f"{prefix}_z")
    x = layers.Dense(base * base * filters[-1], activation="relu", name=f"{prefix}_dec_project")(z)
    x = layers.Reshape((base, base, filters[-1]), name=f"{prefix}_dec_reshape")(x)
    for i, width in enumerate(reversed(filters), start=1):
        x = layers.Conv2DTranspose(width, 3, strides=2, padding="same", activation="relu",
                                   name=f"{prefix}_dec{i}_deconv")(x)
    x = layers.Conv2DTranspose(channels, 3, padding="same", name=f"{prefix}_dec_out")(x)
    image = layers.Activation("sigmoid", name=f"{prefix}_dec_sigmoid")(x)
    return keras.Model(z, image, name="decoder")


def ConvAutoencoder(image_size=28, channels=1, filters=(32, 64), hidden_units=16, latent_dim=16, *,
                    name="conv_autoencoder"):
    """A deterministic convolutional autoencoder (the VAE's networks with a single linear code).

    Args:
        image_size: input height and width, a multiple of ``2 ** len(filters)``.
        channels: 1 or 3.
        filters: widths of the stride-2 3x3 convolutions (mirrored by the decoder).
        hidden_units: the encoder's dense layer before the code.
        latent_dim: length of the code.
        name: model name.

    Returns:
        A keras.Model ``(B, H, W, C)`` in [0, 1] -> reconstruction ``(B, H, W, C)`` in [0, 1],
        with sub-models ``"encoder"`` (image -> code) and ``"decoder"`` (code -> image).
    """
    base = _validate(image_size, channels, filters, hidden_units, latent_dim)
    encoder = _encoder(image_size, channels, filters, hidden_units, latent_dim, False, name)
    decoder = _decoder(base, channels, filters, latent_dim, name)
    image = layers.Input(shape=(image_size, image_size, channels), name=f"{name}_image")
    return keras.Model(image, decoder(encoder(image)), name=name)


def VAE(image_size=28, channels=1, filters=(32, 64), hidden_units=16, latent_dim=2, *, name="vae"):
    """Variational autoencoder with a Gaussian encoder (arXiv:1312.6114).

    Args: as :func:`ConvAutoencoder`; ``latent_dim`` is 2 in the Keras example.

    Returns:
        A keras.Model ``(B, H, W, C)`` in [0, 1] -> ``[reconstruction (B, H, W, C), z_mean (B, latent_dim),
        z_log_var (B, latent_dim)]``; the reconstruction decodes a sample of q(z|x) when
        ``training=True`` and its mean otherwise. Sub-models ``"encoder"`` (image ->
        ``[z_mean, z_log_var]``) and ``"decoder"`` (z -> Bernoulli means / Gaussian means in [0, 1]).
    """
    base = _validate(image_size, channels, filters, hidden_units, latent_dim)
    encoder = _encoder(image_size, channels, filters, hidden_units, latent_dim, True, name)
    decoder = _decoder(base, channels, filters, latent_dim, name)
    image = layers.Input(shape=(image_size, image_size, channels), name=f"{name}_image")
    z_mean, z_log_var = encoder(image)
    z = Reparameterize(name=f"{name}_reparameterize")([z_mean, z_log_var])
    return keras.Model(image, [decoder(z), z_mean, z_log_var], name=name)


def prior_samples(decoder, num, seed=0):
    """Decoded z ~ N(0, I): ``num`` images from a VAE decoder, as a NumPy array."""
    z = np.random.default_rng(seed).standard_normal((num, int(decoder.input_shape[-1]))).astype("float32")
    return np.asarray(decoder(z, training=False))


def _image_spec(config):
    size, channels = config.get("image_size", 28), config.get("channels", 1)
    return [InputSpec((size, size, channels), "float32")]


_KERAS_EXAMPLE = "keras.io/examples/generative/vae (encoder 69,076 + decoder 65,089)"

AUTOENCODER_VARIANTS = {
    "conv_autoencoder": dict(config=dict(image_size=28, channels=1, filters=(32, 64), hidden_units=16, latent_dim=16),
                             tiny=dict(image_size=8, filters=(4, 8), hidden_units=8, latent_dim=4)),
}
VAE_VARIANTS = {
    "vae": dict(config=dict(image_size=28, channels=1, filters=(32, 64), hidden_units=16, latent_dim=2),
                tiny=dict(image_size=8, filters=(4, 8), hidden_units=8, latent_dim=2),
                reference_params=(134_165, _KERAS_EXAMPLE)),
}

_COMMON = dict(task="representation", paper="1312.6114", input_spec=_image_spec, default_dataset="digits",
               export={"tflite": True, "edgetpu": False})
register_family(ConvAutoencoder, AUTOENCODER_VARIANTS, **_COMMON)
register_family(VAE, VAE_VARIANTS, **_COMMON)
