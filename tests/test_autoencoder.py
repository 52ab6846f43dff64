"""Convolutional autoencoder and VAE: architecture, reparameterization, KL, ELBO training, PNGs, decoder export."""
import os
import types

import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.models.autoencoder import VAE, ConvAutoencoder, Reparameterize, gaussian_kl, reparameterize
from training import tasks
from training.tasks_representation import AutoencoderTrainer, reconstruction_nll

both = pytest.mark.both


@both
def test_vae_parameter_counts_match_the_keras_example():
    model = keras_zoo.create_model("vae")
    assert model.count_params() == keras_zoo.model_info("vae").reference_params == 134_165
    assert model.get_layer("encoder").count_params() == 69_076
    assert model.get_layer("decoder").count_params() == 65_089
    assert [tuple(t.shape[1:]) for t in model.outputs] == [(28, 28, 1), (2,), (2,)]


@both
def test_autoencoder_halves_are_usable_alone():
    model = ConvAutoencoder(image_size=16, filters=(4, 8), hidden_units=8, latent_dim=3)
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    images = np.random.default_rng(0).uniform(size=(2, 16, 16, 1)).astype("float32")
    codes = encoder(images)
    assert codes.shape == (2, 3) and decoder.input_shape == (None, 3)
    np.testing.assert_allclose(np.asarray(decoder(codes)), np.asarray(model(images)), atol=1e-6)


@both
@pytest.mark.parametrize("kwargs, match", [
    (dict(image_size=30), "multiple of 4"),
    (dict(channels=2), "channels"),
    (dict(filters=()), "filters"),
    (dict(latent_dim=0), "latent_dim"),
])
def test_invalid_arguments_are_explained(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VAE(**kwargs)


@both
def test_gaussian_kl_matches_the_univariate_closed_form():
    """sum_j [log(1 / sigma_j) + (sigma_j^2 + mu_j^2) / 2 - 1/2], the textbook form of KL(N(mu, sigma^2) || N(0, 1))."""
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(5, 7)).astype("float32")
    log_var = rng.normal(size=(5, 7)).astype("float32")
    sigma = np.exp(0.5 * log_var.astype("float64"))
    expected = np.sum(np.log(1.0 / sigma) + (sigma ** 2 + mu ** 2) / 2.0 - 0.5, axis=-1)
    np.testing.assert_allclose(np.asarray(gaussian_kl(mu, log_var)), expected, rtol=1e-5, atol=1e-5)
    assert np.allclose(np.asarray(gaussian_kl(np.zeros((1, 4)), np.zeros((1, 4)))), 0.0)


@both
def test_reparameterization_matches_numpy_and_is_deterministic_at_inference():
    rng = np.random.default_rng(1)
    mu, log_var, eps = (rng.normal(size=(4, 3)).astype("float32") for _ in range(3))
    np.testing.assert_allclose(np.asarray(reparameterize(mu, log_var, eps)), mu + np.exp(0.5 * log_var) * eps,
                               atol=1e-5)
    layer = Reparameterize()
    np.testing.assert_array_equal(np.asarray(layer([mu, log_var], training=False)), mu)
    np.testing.assert_array_equal(np.asarray(layer([mu, log_var])), mu)


@both
def test_reparameterized_samples_have_the_posterior_moments_and_gradients():
    mu = tf.constant([[1.5, -2.0]])
    log_var = tf.Variable([[np.log(0.25), np.log(4.0)]], dtype=tf.float32)
    layer = Reparameterize()
    with tf.GradientTape() as tape:
        z = layer([tf.tile(mu, [20000, 1]), tf.tile(log_var, [20000, 1])], training=True)
        objective = tf.reduce_sum(z ** 2)
    z = np.asarray(z)
    np.testing.assert_allclose(z.mean(axis=0), [1.5, -2.0], atol=0.05)
    np.testing.assert_allclose(z.std(axis=0), [0.5, 2.0], rtol=0.03)
    # d E[z^2] / d logvar = exp(logvar) per sample: the noise path is differentiable.
    np.testing.assert_allclose(np.asarray(tape.gradient(objective, log_var))[0] / 20000, [0.25, 4.0], rtol=0.05)


@both
def test_reconstruction_likelihoods_match_numpy():
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(3, 4, 4, 1)).astype("float32")
    x_hat = rng.uniform(0.05, 0.95, size=(3, 4, 4, 1)).astype("float32")
    bernoulli = -np.sum(x * np.log(x_hat) + (1 - x) * np.log(1 - x_hat), axis=(1, 2, 3))
    np.testing.assert_allclose(np.asarray(reconstruction_nll(x, x_hat, "bernoulli")), bernoulli, rtol=1e-5)
    sigma = 0.1
    gaussian = np.sum((x - x_hat) ** 2 / (2 * sigma ** 2) + np.log(sigma * np.sqrt(2 * np.pi)), axis=(1, 2, 3))
    np.testing.assert_allclose(np.asarray(reconstruction_nll(x, x_hat, "gaussian", sigma)), gaussian, rtol=1e-5)
    with pytest.raises(ValueError, match="likelihood"):
        reconstruction_nll(x, x_hat, "laplace")


def _digits(split="train"):
    from keras_zoo.data.digits import _stratified_split

    images, labels = _stratified_split()[split]
    return images / 16.0, labels


@both
def test_vae_trains_on_digits_and_reports_reconstruction_and_kl():
    keras.utils.set_random_seed(0)
    model = VAE(image_size=8, filters=(8, 16), hidden_units=32, latent_dim=4)
    task = tasks.get_task("representation")
    trainer = task.prepare(model, {})
    task.compile(trainer, keras.optimizers.Adam(1e-2), {})
    images, labels = _digits()
    data = tf.data.Dataset.from_tensor_slices((images[:512], labels[:512])).batch(64)
    before = trainer.evaluate(data, return_dict=True, verbose=0)
    assert set(before) == {"loss", "reconstruction", "kl"}
    trainer.fit(data, epochs=3, verbose=0)
    after = trainer.evaluate(data, return_dict=True, verbose=0)
    np.testing.assert_allclose(after["loss"], after["reconstruction"] + after["kl"], rtol=1e-4)
    assert after["loss"] < before["loss"] - 3.0
    assert after["kl"] > 0.0


@both
def test_autoencoder_task_logs_no_kl_and_rejects_other_models():
    task = tasks.get_task("representation", {"vae_likelihood": "gaussian"})
    trainer = task.prepare(ConvAutoencoder(image_size=8, filters=(4,), hidden_units=8, latent_dim=4), {})
    assert isinstance(trainer, AutoencoderTrainer) and trainer.likelihood == "gaussian"
    assert [m.name for m in trainer.metrics] == ["loss", "reconstruction"]
    with pytest.raises(ValueError, match="representation task trains autoencoders"):
        task.prepare(keras_zoo.create_model("dcgan", tiny=True), {})
    with pytest.raises(ValueError, match="vae_likelihood"):
        tasks.get_task("representation", {"vae_likelihood": "poisson"})


@both
def test_after_training_writes_reconstructions_and_prior_samples(tmp_path):
    model = VAE(image_size=8, filters=(4, 8), hidden_units=8, latent_dim=2)
    images, labels = _digits("test")
    bundle = types.SimpleNamespace(test=tf.data.Dataset.from_tensor_slices((images, labels)).batch(16))
    result = tasks.get_task("representation").after_training(model, bundle, str(tmp_path), {})
    assert set(result) == {"reconstructions_png", "samples_png"}
    for path in result.values():
        assert os.path.getsize(path) > 1000


@pytest.mark.tf_keras
def test_vae_decoder_exports_to_float_tflite_matching_keras():
    from export.convert import convert, input_signature
    from export.verify import TFLiteRunner

    keras.utils.set_random_seed(0)
    decoder = VAE(image_size=8, filters=(4, 8), hidden_units=8, latent_dim=2).get_layer("decoder")
    runner = TFLiteRunner(convert(decoder, "float32", input_signature(decoder)))
    z = np.random.default_rng(0).standard_normal((4, 1, 2)).astype("float32")
    for sample in z:
        np.testing.assert_allclose(runner([sample])[0], np.asarray(decoder(sample)), atol=1e-5)
