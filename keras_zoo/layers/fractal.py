"""FractalNet joins with local and global drop-path (Larsson et al., 2016, arXiv:1605.07648).

A join merges the columns that end at the same depth by their element-wise
mean (Sec. 2). Drop-path (Sec. 3) regularises the columns during training:

- local: each join drops each input with probability ``p`` (0.15 in the
  paper), keeping at least one; the mean is over the kept inputs only;
- global: a single column is selected for the whole network; every join that
  the column passes through keeps that column alone.

The paper mixes the two 50/50 per mini-batch. ``FractalDropPathPlan`` makes
that draw once per batch at the network input and every ``FractalJoin``
reads it, so that a global draw selects the same column everywhere.
Columns are numbered 1 (shallowest, one conv per block) to C (deepest,
``2^(C-1)`` convs per block). At inference nothing is dropped: a join is the
plain mean, or, with ``inference_column=c``, column ``c`` alone (the paper's
"=> deepest" results of Table 1).
"""
import tensorflow as tf

from keras_zoo.backend import keras, serializable
from keras_zoo.layers.stochastic_depth import bernoulli_keep_mask


def _check_probability(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"`{what}` must be a number in [0, 1]. Received: {what}={value!r}")


def check_inference_column(column, num_columns, what="inference_column"):
    """Validates a column number in [1, num_columns] (or None)."""
    if column is None:
        return
    if isinstance(column, bool) or not isinstance(column, int) or not 1 <= column <= num_columns:
        raise ValueError(
            f"`{what}` must be None (mean of all columns) or a column number in [1, {num_columns}] "
            f"(1 is the shallowest, {num_columns} the deepest). Received: {what}={column!r}"
        )


@serializable
class FractalDropPathPlan(keras.layers.Layer):
    """Draws the network-wide drop-path mode of one training batch.

    Output: ``(batch, num_columns)`` floats. In a global batch (probability
    ``global_probability``) every row is the one-hot of a column drawn
    uniformly; in a local batch, and always at inference, it is all zeros.
    The input is any batch-first tensor (the images).

    Args:
        num_columns: C.
        global_probability: share of batches that use global drop-path (0.5).
        seed: optional op-level seed.
    """

    def __init__(self, num_columns, global_probability=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_columns, bool) or not isinstance(num_columns, int) or num_columns < 1:
            raise ValueError(f"`num_columns` must be a positive integer. Received: num_columns={num_columns!r}")
        _check_probability(global_probability, "global_probability")
        self.num_columns = num_columns
        self.global_probability = float(global_probability)
        self.seed = seed

    def call(self, inputs, training=None):
        batch = tf.shape(inputs)[0]
        if not training or self.global_probability == 0.0:
            return tf.zeros([batch, self.num_columns], self.compute_dtype)
        is_global = bernoulli_keep_mask([], self.global_probability, self.compute_dtype, self.seed)
        column = tf.random.uniform([], 0, self.num_columns, dtype=tf.int32, seed=self.seed)
        row = is_global * tf.one_hot(column, self.num_columns, dtype=self.compute_dtype)
        return tf.tile(row[None, :], [batch, 1])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_columns)

    def get_config(self):
        config = super().get_config()
        config.update(num_columns=self.num_columns, global_probability=self.global_probability, seed=self.seed)
        return config


@serializable
class FractalJoin(keras.layers.Layer):
    """Element-wise mean of the columns meeting at one depth, with drop-path.

    Called on ``[x_a, x_b, ..., plan]``: the branch tensors in the order of
    ``columns`` and the ``FractalDropPathPlan`` output.

    Training: if the plan selects a column that is among ``columns``, the
    output is that branch; otherwise each branch is kept with probability
    ``1 - drop_probability`` (one drawn uniformly if none survives) and the
    output is the mean of the kept branches. Inference: the mean of all
    branches, or the ``inference_column`` branch when it is among ``columns``.

    Args:
        columns: the 1-based column number of each branch, increasing.
        drop_probability: local drop-path rate (0.15 in the paper).
        inference_column: None or a column number (see the module docstring).
        seed: optional op-level seed.
    """

    def __init__(self, columns, drop_probability=0.15, inference_column=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        columns = tuple(columns) if isinstance(columns, (tuple, list)) else ()
        if (len(columns) < 2 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in columns)
                or list(columns) != sorted(set(columns))):
            raise ValueError(
                "`columns` must list at least two distinct, increasing 1-based column numbers, one per "
                f"joined branch. Received: columns={columns!r}"
            )
        _check_probability(drop_probability, "drop_probability")
        if inference_column is not None and (
                isinstance(inference_column, bool) or not isinstance(inference_column, int) or inference_column < 1):
            raise ValueError(
                "`inference_column` must be None (mean of the branches) or a 1-based column number. "
                f"Received: inference_column={inference_column!r}"
            )
        self.columns = columns
        self.drop_probability = float(drop_probability)
        self.inference_column = inference_column
        self.seed = seed

    def call(self, inputs, training=None):
        *branches, plan = inputs
        if len(branches) != len(self.columns):
            raise ValueError(
                f"{self.name}: expected {len(self.columns)} branches for columns {self.columns} plus the "
                f"drop-path plan. Received: {len(branches)} branches"
            )
        if not training:
            if self.inference_column in self.columns:
                return branches[self.columns.index(self.inference_column)]
            # Chained ADDs rather than ADD_N, which the Edge TPU does not map.
            total = branches[0]
            for branch in branches[1:]:
                total = total + branch
            return total * (1.0 / len(branches))
        weights = self._training_weights(plan, branches[0].dtype)
        rank = branches[0].shape.rank
        total = tf.add_n([tf.reshape(weights[:, i], [-1] + [1] * (rank - 1)) * branch
                          for i, branch in enumerate(branches)])
        count = tf.reshape(tf.reduce_sum(weights, axis=1), [-1] + [1] * (rank - 1))
        return total / count

    def _training_weights(self, plan, dtype):
        """``(batch, branches)`` {0, 1} weights: the global column, or local keep decisions."""
        n = len(self.columns)
        plan = tf.cast(plan, dtype)
        global_weights = tf.gather(plan, [c - 1 for c in self.columns], axis=1)
        keep = bernoulli_keep_mask([1, n], 1.0 - self.drop_probability, dtype, self.seed)
        rescue = tf.one_hot(tf.random.uniform([1], 0, n, dtype=tf.int32, seed=self.seed), n, dtype=dtype)
        local_weights = tf.where(tf.reduce_sum(keep) > 0, keep, rescue)
        selected_here = tf.reduce_sum(global_weights, axis=1, keepdims=True) > 0
        return tf.where(selected_here, global_weights, local_weights + tf.zeros_like(global_weights))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update(columns=list(self.columns), drop_probability=self.drop_probability,
                      inference_column=self.inference_column, seed=self.seed)
        return config
