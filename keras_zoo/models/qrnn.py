"""Quasi-recurrent neural network models (Bradbury et al., 2016, arXiv:1611.01576).

- ``QRNNLanguageModel``: the paper's Penn Treebank word-level language model
  (section 3.2): an untied word embedding, two stacked 640-unit fo-QRNN layers
  with window 2 and zoneout 0.1, dropout 0.5 on the embedding and every layer
  output ("medium" setting of Zaremba et al., 2014), and a softmax layer (logits).
- ``QRNNClassifier``: the paper's IMDb sentiment classifier (section 3.1): a
  densely connected four-layer QRNN, 256 units per layer, window 2, 300-d word
  vectors and dropout 0.3 between layers; each layer's input is concatenated to
  its output before the next layer (section 2.1), and the last layer's final
  state feeds the classifier.

``inference_model`` turns a trained language model into the single-step graph
with explicit states that the TFLite exporter converts, and ``generate``
samples text with it.
"""
import numpy as np

from keras_zoo.backend import keras
from keras_zoo.layers.qrnn import QRNN
from keras_zoo.registry import InputSpec, register_family

PAPER = "1611.01576"


def _validate(name, value, allowed, fix):
    if not allowed(value):
        raise ValueError(f"`{name}` {fix}. Received: {name}={value!r}")


def _check_common(vocab_size, units, num_layers, window, dropout):
    _validate("vocab_size", vocab_size, lambda v: isinstance(v, int) and v > 1, "must be an integer > 1")
    _validate("units", units, lambda v: isinstance(v, int) and v > 0, "must be a positive integer")
    _validate("num_layers", num_layers, lambda v: isinstance(v, int) and v > 0, "must be a positive integer")
    _validate("window", window, lambda v: isinstance(v, int) and v > 0, "must be a positive integer")
    _validate("dropout", dropout, lambda v: 0.0 <= v < 1.0, "must be a probability in [0, 1)")


def QRNNLanguageModel(
    vocab_size=10000,
    seq_len=None,
    embedding_dim=640,
    units=640,
    num_layers=2,
    window=2,
    pooling="fo",
    zoneout=0.1,
    dropout=0.5,
    name="qrnn_lm",
):
    """QRNN language model (arXiv:1611.01576, section 3.2); returns logits.

    Args:
        vocab_size: number of token ids (10,000 for the Mikolov PTB).
        seq_len: training sequence length, or None for variable length
            (the paper trains on 105-step windows).
        embedding_dim: width of the (untied) input embedding.
        units: units of every QRNN layer (paper: 640).
        num_layers: stacked QRNN layers (paper: 2).
        window: convolution width k of every layer (paper: 2).
        pooling: "f", "fo" (paper) or "ifo".
        zoneout: zoneout probability on the forget gates (paper: 0.1).
        dropout: dropout on the embedding and after every QRNN layer (paper: 0.5).
        name: model name; layers are named ``name + "_qrnn1"`` and so on.

    Input: int32 ids (batch, seq_len). Output: logits (batch, seq_len, vocab_size).
    """
    _check_common(vocab_size, units, num_layers, window, dropout)
    _validate("embedding_dim", embedding_dim, lambda v: isinstance(v, int) and v > 0, "must be a positive integer")
    ids = keras.Input((seq_len,), dtype="int32", name=f"{name}_ids")
    x = keras.layers.Embedding(vocab_size, embedding_dim, name=f"{name}_embedding")(ids)
    x = keras.layers.Dropout(dropout, name=f"{name}_embedding_dropout")(x)
    for index in range(1, num_layers + 1):
        x = QRNN(
            units, window=window, pooling=pooling, zoneout=zoneout, return_sequences=True, name=f"{name}_qrnn{index}"
        )(x)
        x = keras.layers.Dropout(dropout, name=f"{name}_qrnn{index}_dropout")(x)
    logits = keras.layers.Dense(vocab_size, name=f"{name}_logits")(x)
    return keras.Model(ids, logits, name=name)


def QRNNClassifier(
    vocab_size=20000,
    classes=2,
    seq_len=None,
    embedding_dim=300,
    units=256,
    num_layers=4,
    window=2,
    pooling="fo",
    dropout=0.3,
    densely_connected=True,
    classifier_activation="softmax",
    name="qrnn_classifier",
):
    """Densely connected QRNN document classifier (arXiv:1611.01576, sections 2.1 and 3.1).

    Token id 0 is padding: it is masked, so padded steps leave the QRNN states
    unchanged and the classifier reads each document's last real step.

    Args:
        vocab_size: number of token ids, 0 being padding (the paper uses
            300-d cased GloVe vectors for its vocabulary).
        classes: number of classes (IMDb: 2).
        seq_len: document length, or None for variable length.
        embedding_dim: width of the word vectors (paper: 300).
        units: units of every QRNN layer (paper: 256).
        num_layers: stacked QRNN layers (paper: 4).
        window: convolution width k (paper: 2; a k=4 variant is also reported).
        pooling: "f", "fo" (default) or "ifo".
        dropout: dropout on the embedding and between layers (paper: 0.3).
        densely_connected: concatenate each layer's input to its output
            before the next layer (paper section 2.1).
        classifier_activation: activation of the output layer (None for logits).
        name: model name.

    Input: int32 ids (batch, seq_len). Output: (batch, classes).
    """
    _check_common(vocab_size, units, num_layers, window, dropout)
    _validate("classes", classes, lambda v: isinstance(v, int) and v > 1, "must be an integer > 1")
    ids = keras.Input((seq_len,), dtype="int32", name=f"{name}_ids")
    x = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name=f"{name}_embedding")(ids)
    x = keras.layers.Dropout(dropout, name=f"{name}_embedding_dropout")(x)
    for index in range(1, num_layers + 1):
        last = index == num_layers
        h = QRNN(units, window=window, pooling=pooling, return_sequences=not last, name=f"{name}_qrnn{index}")(x)
        h = keras.layers.Dropout(dropout, name=f"{name}_qrnn{index}_dropout")(h)
        if densely_connected and not last:
            x = keras.layers.Concatenate(name=f"{name}_qrnn{index}_dense")([x, h])
        else:
            x = h
    outputs = keras.layers.Dense(classes, activation=classifier_activation, name=f"{name}_predictions")(x)
    return keras.Model(ids, outputs, name=name)


def language_model_params(vocab_size, embedding_dim, units, num_layers, window, pooling="fo"):
    """Parameter count of ``QRNNLanguageModel`` by hand: embedding + QRNN layers + softmax."""
    gates = {"f": 2, "fo": 3, "ifo": 4}[pooling]
    count, width = vocab_size * embedding_dim, embedding_dim
    for _ in range(num_layers):
        count += window * width * gates * units + gates * units
        width = units
    return count + units * vocab_size + vocab_size


def inference_model(trained_model, config=None):
    """Single-step graph of a trained ``QRNNLanguageModel``, at batch 1, sharing its weights.

    Inputs: ``token`` (1, 1) int32, then for every QRNN layer its state ``c``
    (1, units) and, if window > 1, its previous inputs (1, window - 1, width).
    Outputs: logits (1, 1, vocab_size), then the new states in the same order.
    Zeros are the states before the first token. Dropout and zoneout are
    inference identities and are left out. ``config`` (the builder kwargs) is
    not needed: the structure is read from the trained model's layers.
    """
    del config
    embedding = [layer for layer in trained_model.layers if isinstance(layer, keras.layers.Embedding)]
    qrnns = [layer for layer in trained_model.layers if isinstance(layer, QRNN)]
    head = trained_model.layers[-1]
    chain = [embedding[0].output_dim if embedding else None] + [q.units for q in qrnns]
    is_language_model = (
        len(embedding) == 1
        and qrnns
        and isinstance(head, keras.layers.Dense)
        and all(q.return_sequences for q in qrnns)
        and all(q.kernel.shape[0] == q.window * width for q, width in zip(qrnns, chain))
    )
    if not is_language_model:
        raise ValueError(
            "`inference_model` needs a QRNN language model (Embedding -> QRNN layers -> Dense logits), "
            f"as built by QRNNLanguageModel. Received: model {trained_model.name!r} with layers "
            f"{[layer.__class__.__name__ for layer in trained_model.layers]}"
        )
    token = keras.Input((1,), batch_size=1, dtype="int32", name="token")
    step_embedding = keras.layers.Embedding.from_config({**embedding[0].get_config(), "mask_zero": False})
    x = step_embedding(token)
    step_layers, state_inputs, state_outputs = [step_embedding], [], []
    for qrnn in qrnns:
        width = qrnn.kernel.shape[0] // qrnn.window
        states = [keras.Input((qrnn.units,), batch_size=1, name=f"{qrnn.name}_c")]
        if qrnn.window > 1:
            states.append(keras.Input((qrnn.window - 1, width), batch_size=1, name=f"{qrnn.name}_previous_inputs"))
        config = {**qrnn.get_config(), "return_sequences": True, "return_state": True, "stateful": False, "zoneout": 0.0}
        step_qrnn = QRNN.from_config(config)
        x, *new_states = step_qrnn(x, initial_state=states)
        step_layers.append(step_qrnn)
        state_inputs += states
        state_outputs += new_states
    step_head = keras.layers.Dense.from_config(head.get_config())
    logits = step_head(x)
    step_layers.append(step_head)
    model = keras.Model([token] + state_inputs, [logits] + state_outputs, name=f"{trained_model.name}_step")
    for step_layer, trained in zip(step_layers, embedding + qrnns + [head]):
        step_layer.set_weights(trained.get_weights())
    return model


def generate(model, prompt_ids, num_steps, temperature=1.0, seed=0):
    """Samples ``num_steps`` tokens after ``prompt_ids`` one step at a time.

    Args:
        model: a trained ``QRNNLanguageModel`` or its ``inference_model``.
        prompt_ids: 1-D sequence of at least one token id.
        num_steps: number of tokens to sample.
        temperature: softmax temperature; 0 picks the most likely token (greedy).
        seed: seed of the sampler.

    Returns:
        int32 array: the prompt followed by the ``num_steps`` sampled ids.
    """
    prompt = [int(i) for i in np.asarray(prompt_ids).reshape(-1)]
    if not prompt:
        raise ValueError("`prompt_ids` needs at least one token id to condition on. Received: prompt_ids=[]")
    if temperature < 0:
        raise ValueError(f"`temperature` must be >= 0 (0 = greedy). Received: temperature={temperature!r}")
    step = model if len(model.inputs) > 1 else inference_model(model)
    states = [np.zeros((1, *state.shape[1:]), "float32") for state in step.inputs[1:]]
    rng = np.random.default_rng(seed)
    ids = list(prompt)
    for position in range(len(prompt) + num_steps - 1):
        logits, *states = step([np.array([[ids[position]]], "int32")] + states, training=False)
        states = [np.asarray(state) for state in states]
        if position + 1 < len(prompt):
            continue
        logits = np.asarray(logits, "float64").reshape(-1)
        if temperature == 0:
            ids.append(int(np.argmax(logits)))
        else:
            scaled = logits / temperature
            probabilities = np.exp(scaled - scaled.max())
            ids.append(int(rng.choice(len(probabilities), p=probabilities / probabilities.sum())))
    return np.array(ids, "int32")


def _sequence_input_spec(config):
    return [InputSpec(shape=(config.get("seq_len") or 32,), dtype="int32", maxval=config["vocab_size"])]


_EXPORT = {
    "tflite": True,
    "edgetpu": "the embedding lookup (GATHER) falls back to the CPU; the QRNN step cell "
    "(fully connected, logistic, tanh, mul, add, concatenation, slice) is Edge TPU friendly",
}
_TINY_LM = dict(vocab_size=37, seq_len=20, embedding_dim=8, units=8)

LANGUAGE_MODELS = {
    "qrnn_lm_word": dict(
        config=dict(vocab_size=10000, embedding_dim=640, units=640, num_layers=2, window=2, zoneout=0.1,
                    dropout=0.5, name="qrnn_lm_word"),
        tiny=_TINY_LM,
        default_dataset="docstrings_word",
        reference_params=(
            17_729_040,
            "hand count of the arXiv:1611.01576 section 3.2 model (10k-word PTB vocabulary, untied 640-d "
            "embedding, 2 x 640-unit fo-QRNN, window 2, softmax); the paper's Table 2 rounds it to 18M",
        ),
    ),
    # The paper has no character-level model: this is the same architecture
    # and regularisation (section 3.2) over a byte vocabulary.
    "qrnn_lm_char": dict(
        config=dict(vocab_size=256, embedding_dim=640, units=640, num_layers=2, window=2, zoneout=0.1,
                    dropout=0.5, name="qrnn_lm_char"),
        tiny=_TINY_LM,
        default_dataset="docstrings_char",
    ),
}

CLASSIFIERS = {
    "qrnn_sentiment": dict(
        config=dict(vocab_size=20000, classes=2, embedding_dim=300, units=256, num_layers=4, window=2, dropout=0.3,
                    name="qrnn_sentiment"),
        tiny=dict(vocab_size=40, classes=3, seq_len=20, embedding_dim=8, units=6, num_layers=3),
        default_dataset="docstrings_topic",
    ),
}

register_family(
    QRNNLanguageModel, LANGUAGE_MODELS, task="language_model", paper=PAPER, input_spec=_sequence_input_spec,
    export=_EXPORT, inference_model=inference_model,
)
register_family(
    QRNNClassifier, CLASSIFIERS, task="sequence_classification", paper=PAPER, input_spec=_sequence_input_spec,
    export=_EXPORT,
)
