"""Recurrent baselines: a word/character language model and a sequence classifier.

``rnn_lm`` is the stacked LSTM language model of Zaremba, Sutskever & Vinyals (2014,
arXiv:1409.2329), "medium" configuration: 2 layers of 650 units, 650-d embeddings,
dropout 0.5 between layers, 35 unrolled steps, 10k vocabulary.
``rnn_classifier`` is the LSTM document classifier baseline of Dai & Le (2015,
arXiv:1511.01432): embeddings, a (optionally bidirectional) recurrent encoder, and a
softmax on the last state.

Both take ``cell="lstm" | "gru" | "rnn" | "qrnn" | "peephole_lstm"`` so the cells can be
compared at equal width (tools/bench_sequence.py). ``recurrent_layer`` is shared with
the seq2seq family.
"""
from keras_zoo.backend import keras
from keras_zoo.layers.peephole_lstm import PeepholeLSTMCell
from keras_zoo.registry import InputSpec, register_family

CELLS = ("lstm", "gru", "rnn", "qrnn", "peephole_lstm")
QRNN_WINDOW = 2


def check_cell(cell):
    if cell not in CELLS:
        raise ValueError(f"`cell` must be one of {CELLS}. Received: cell={cell!r}")


def state_shapes(cell, units, input_dim):
    """Shapes (without batch) of the states one recurrent layer of ``cell`` carries.

    LSTMs carry (h, c); GRU and simple RNN carry h; a QRNN carries its pooling state c
    and the last ``window - 1`` inputs its causal convolution needs.
    """
    check_cell(cell)
    if cell in ("lstm", "peephole_lstm"):
        return [(units,), (units,)]
    if cell == "qrnn":
        return [(units,), (QRNN_WINDOW - 1, input_dim)]
    return [(units,)]


def recurrent_layer(cell, units, *, return_sequences=True, return_state=False,
                    go_backwards=False, unroll=False, name=None):
    """A Keras recurrent layer of type ``cell`` (see ``CELLS``) with ``units`` units.

    ``unroll`` is used by single-step inference graphs, which then convert to
    plain TFLite builtin ops.
    """
    check_cell(cell)
    common = dict(return_sequences=return_sequences, return_state=return_state,
                  go_backwards=go_backwards, name=name)
    if cell == "lstm":
        return keras.layers.LSTM(units, unroll=unroll, **common)
    if cell == "gru":
        return keras.layers.GRU(units, unroll=unroll, **common)
    if cell == "rnn":
        return keras.layers.SimpleRNN(units, unroll=unroll, **common)
    if cell == "peephole_lstm":
        return keras.layers.RNN(PeepholeLSTMCell(units), unroll=unroll, **common)
    from keras_zoo.layers.qrnn import QRNN  # written by the QRNN family; imported on use

    return QRNN(units, window=QRNN_WINDOW, **common)


def _check_positive(**values):
    for key, value in values.items():
        if value is None or int(value) <= 0:
            raise ValueError(f"`{key}` must be a positive integer. Received: {key}={value!r}")


def RNNLanguageModel(vocab_size=10000, seq_len=35, *, cell="lstm", embedding_dim=650,
                     units=650, num_layers=2, dropout=0.5, step=False, name="rnn_lm"):
    """Stacked recurrent language model (Zaremba et al., 2014, arXiv:1409.2329).

    Args:
        vocab_size: number of token ids; inputs are int32 ids in [0, vocab_size).
        seq_len: training length T; inputs are (batch, T), outputs (batch, T, vocab_size)
            next-token logits. None allows any length.
        cell: one of ``CELLS``.
        embedding_dim: token embedding width.
        units: recurrent width of every layer.
        num_layers: recurrent layers stacked.
        dropout: dropout on the embeddings, between layers and before the softmax
            (the non-recurrent connections only, as in the paper).
        step: build the single-step inference graph instead: inputs ``[ids (batch, 1),
            *states]`` and outputs ``[logits (batch, vocab_size), *new_states]``, with
            the same layers and weights as the training model.
        name: model name.
    """
    check_cell(cell)
    _check_positive(vocab_size=vocab_size, embedding_dim=embedding_dim, units=units,
                    num_layers=num_layers)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
    ids = keras.Input(shape=(1,) if step else (seq_len,), dtype="int32", name="ids")
    states_in, states_out = [], []
    x = keras.layers.Embedding(vocab_size, embedding_dim, name=f"{name}_embedding")(ids)
    x = keras.layers.Dropout(dropout, name=f"{name}_embedding_dropout")(x)
    for layer_index in range(1, num_layers + 1):
        layer_name = f"{name}_{layer_index}_{cell}"
        layer = recurrent_layer(cell, units, return_state=step, unroll=step, name=layer_name)
        if step:
            input_dim = embedding_dim if layer_index == 1 else units
            initial = [keras.Input(shape=shape, name=f"{layer_name}_state_{k}")
                       for k, shape in enumerate(state_shapes(cell, units, input_dim))]
            states_in += initial
            x, *new_states = layer(x, initial_state=initial)
            states_out += new_states
        else:
            x = layer(x)
        x = keras.layers.Dropout(dropout, name=f"{name}_{layer_index}_dropout")(x)
    if step:
        x = keras.layers.Reshape((units,), name=f"{name}_step_reshape")(x)
    logits = keras.layers.Dense(vocab_size, name=f"{name}_logits")(x)
    if step:
        return keras.Model([ids, *states_in], [logits, *states_out], name=f"{name}_step")
    return keras.Model(ids, logits, name=name)


def RNNClassifier(vocab_size=20000, seq_len=400, classes=2, *, cell="lstm", embedding_dim=256,
                  units=512, num_layers=1, bidirectional=False, dropout=0.0,
                  classifier_activation="softmax", name="rnn_classifier"):
    """Recurrent sequence classifier (LSTM baseline of Dai & Le, 2015, arXiv:1511.01432).

    Args:
        vocab_size: number of token ids; inputs are int32 ids (batch, seq_len).
        seq_len: input length (None: any length).
        classes: number of classes; the output is (batch, classes).
        cell: one of ``CELLS``.
        embedding_dim: token embedding width.
        units: recurrent width (per direction when bidirectional).
        num_layers: recurrent layers stacked; the last one returns its final output.
        bidirectional: read the sequence in both directions (Schuster & Paliwal, 1997)
            and concatenate the two final outputs.
        dropout: dropout on embeddings and before the classifier.
        classifier_activation: activation of the output layer (None for logits).
        name: model name.

    There is no masking (it would not convert to fixed-shape TFLite graphs): padding
    tokens are read like any other, so pad short sequences at the front to let the
    forward direction end on real tokens.
    """
    check_cell(cell)
    _check_positive(vocab_size=vocab_size, classes=classes, embedding_dim=embedding_dim,
                    units=units, num_layers=num_layers)
    ids = keras.Input(shape=(seq_len,), dtype="int32", name="ids")
    x = keras.layers.Embedding(vocab_size, embedding_dim, name=f"{name}_embedding")(ids)
    x = keras.layers.Dropout(dropout, name=f"{name}_embedding_dropout")(x)
    for layer_index in range(1, num_layers + 1):
        layer_name = f"{name}_{layer_index}_{cell}"
        last = layer_index == num_layers
        if bidirectional:
            x = _bidirectional(x, cell, units, return_sequences=not last, name=layer_name)
        else:
            x = recurrent_layer(cell, units, return_sequences=not last, name=layer_name)(x)
    x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    outputs = keras.layers.Dense(classes, activation=classifier_activation,
                                 name=f"{name}_predictions")(x)
    return keras.Model(ids, outputs, name=name)


def _bidirectional(x, cell, units, return_sequences, name):
    forward = recurrent_layer(cell, units, return_sequences=return_sequences, name=f"{name}_forward")
    backward = recurrent_layer(cell, units, return_sequences=return_sequences, go_backwards=True,
                               name=f"{name}_backward")
    return keras.layers.Bidirectional(forward, backward_layer=backward, merge_mode="concat",
                                      name=f"{name}_bidirectional")(x)


def _lm_inputs(config):
    return [InputSpec((config["seq_len"],), "int32", maxval=config["vocab_size"])]


def lm_step_model(model, config):
    """Single-step graph with explicit state (batch 1), sharing ``model``'s weights."""
    step = RNNLanguageModel(**{**config, "seq_len": 1, "step": True})
    step.set_weights(model.get_weights())
    return step


_TINY = dict(vocab_size=40, seq_len=8, embedding_dim=12, units=16)

register_family(
    RNNLanguageModel,
    {
        "rnn_lm": dict(
            config=dict(cell="lstm", vocab_size=10000, seq_len=35, embedding_dim=650, units=650,
                        num_layers=2, dropout=0.5),
            tiny=dict(_TINY),
            inference_model=lm_step_model,
        ),
    },
    task="language_model",
    paper="1409.2329",
    input_spec=_lm_inputs,
    default_dataset="docstrings_char",
    export={"tflite": True,
            "edgetpu": "the single-step graph is int8-convertible, but Edge TPU compiler 16 maps "
                       "recurrent step graphs only partly (no compiler here to confirm)"},
)

register_family(
    RNNClassifier,
    {
        "rnn_classifier": dict(
            config=dict(cell="lstm", vocab_size=20000, seq_len=400, classes=2, embedding_dim=256,
                        units=512, num_layers=1, bidirectional=False),
            tiny=dict(_TINY, classes=3, bidirectional=True),
        ),
    },
    task="sequence_classification",
    paper="1511.01432",
    input_spec=_lm_inputs,
    default_dataset="docstrings_topic",
    export={"tflite": True,
            "edgetpu": "exported at fixed length; recurrent loops are unrolled into many small "
                       "ops and Edge TPU compiler 16 support is not verified (no compiler here)"},
)
