"""Differentiable Neural Computer (Graves et al., 2016, Nature 538:471).

An LSTM controller with a dynamic external memory (content, allocation and
temporal-link addressing); the equations live in ``keras_zoo.layers.dnc_memory``.
The registered sizes are those of the paper's bAbI DNC (Methods): an LSTM
controller of 256 units, N = 256 slots of W = 64, R = 4 read heads; the paper's
controller may stack LSTM layers, this one has a single layer. ``dnc`` is registered for the
copy task (Graves et al., 2014, arXiv:1410.5401): inputs (batch, T, bits + 1) with a
delimiter channel, outputs (batch, T, bits) logits of the replayed bits.
"""
from keras_zoo.backend import keras
from keras_zoo.layers.dnc_memory import DNCCell, interface_size
from keras_zoo.registry import InputSpec, register_family

_STATE_NAMES = ("memory", "usage", "link", "precedence", "read_weights", "write_weights",
                "read_vectors", "controller_h", "controller_c")


def DNC(input_size=9, output_size=8, time_steps=None, *, memory_size=256, word_size=64,
        num_read_heads=4, controller_units=256, step=False, name="dnc"):
    """Builds a DNC sequence model: (batch, T, input_size) -> (batch, T, output_size) logits.

    Args:
        input_size: features per time step (copy task: bits + 1 delimiter channel).
        output_size: outputs per step, returned as logits (copy task: bits).
        time_steps: sequence length T; None allows any length.
        memory_size: N, memory slots.
        word_size: W, width of a slot.
        num_read_heads: R.
        controller_units: LSTM units of the controller.
        step: build the single-step graph for export instead: inputs ``[x (batch,
            input_size), *states]``, outputs ``[y (batch, output_size), *new_states]``
            with the state order of ``DNCCell`` (memory, usage, link, precedence, read
            weights, write weights, read vectors, controller h, c), all zeros at t = 0.
        name: model name.
    """
    for arg, value in dict(input_size=input_size, output_size=output_size).items():
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"`{arg}` must be a positive integer. Received: {arg}={value!r}")
    if time_steps is not None and (not isinstance(time_steps, int) or time_steps <= 0):
        raise ValueError(f"`time_steps` must be a positive integer or None. Received: time_steps={time_steps!r}")
    cell = DNCCell(output_size, memory_size=memory_size, word_size=word_size,
                   num_read_heads=num_read_heads, controller_units=controller_units, name=f"{name}_cell")
    rnn = keras.layers.RNN(cell, return_sequences=not step, return_state=step, unroll=step,
                           name=f"{name}_rnn")
    if not step:
        inputs = keras.Input(shape=(time_steps, input_size), name="sequence")
        return keras.Model(inputs, rnn(inputs), name=name)
    x = keras.Input(shape=(input_size,), name="x")
    states = [keras.Input(shape=(size,), name=state) for size, state in zip(cell.state_size, _STATE_NAMES)]
    sequence = keras.layers.Reshape((1, input_size), name=f"{name}_step_reshape")(x)
    y, *new_states = rnn(sequence, initial_state=states)
    return keras.Model([x, *states], [y, *new_states], name=f"{name}_step")


def dnc_step_model(model, config):
    """Single step with explicit state (batch 1), sharing ``model``'s weights."""
    step = DNC(**{**config, "time_steps": None, "step": True})
    step.set_weights(model.get_weights())
    return step


def _inputs(config):
    # Copy task with 10-vector sequences: 10 inputs, the delimiter, 10 replay steps.
    return [InputSpec((config.get("time_steps") or 21, config["input_size"]))]


register_family(
    DNC,
    {
        "dnc": dict(
            config=dict(input_size=9, output_size=8, memory_size=256, word_size=64, num_read_heads=4,
                        controller_units=256),
            tiny=dict(input_size=5, output_size=4, time_steps=7, memory_size=8, word_size=6,
                      num_read_heads=2, controller_units=16),
            inference_model=dnc_step_model,
        ),
    },
    task="memory",
    paper="Nature 538:471 (2016)",
    input_spec=_inputs,
    default_dataset="copy",
    export={"tflite": True,
            "edgetpu": "the step graph sorts usage (TOPK_V2) and builds (N, N) products; int8 "
                       "conversion and Edge TPU mapping are not verified (no compiler here)"},
)

__all__ = ["DNC", "dnc_step_model", "interface_size"]
