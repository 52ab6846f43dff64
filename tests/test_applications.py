"""keras_zoo.applications re-exports a builder for every registered family."""
import keras_zoo
from keras_zoo import applications


def test_every_registered_family_has_a_public_builder():
    exported = {getattr(applications, name) for name in applications.__all__}
    builders = {keras_zoo.model_info(name).builder for name in keras_zoo.list_models()}
    missing = sorted(b.__module__ + "." + b.__name__ for b in builders - exported)
    assert not missing, f"add these builders to keras_zoo.applications: {missing}"


def test_qrnn_application_builds_the_paper_language_model():
    model = applications.QRNN(vocab_size=50, seq_len=12, embedding_dim=8, units=8)
    assert model.output_shape == (None, 12, 50)
