"""Writes samples of a trained generator: ``python -m training.sample --model_dir=DIR --num=16``.

- ``image_generation`` models (PixelCNN family): ancestral sampling, one PNG grid
  ``DIR/samples/samples.png`` (class-conditional models: labels cycle 0, 1, ...
  unless ``--label`` is given).
- ``gan`` models (DCGAN): ``--num`` images from z ~ U(-1, 1), one PNG grid
  ``DIR/samples/samples.png``.
- ``image_to_image`` models (pix2pix): the first ``--num`` test pairs of the run's
  dataset, one PNG grid ``DIR/samples/samples.png`` with rows input | generated | target.
- ``audio_generation`` models (WaveNet): cached generation (arXiv:1611.09482) of
  ``--length`` samples each, written as 16-bit WAV files ``DIR/samples/sample_000.wav`` ...

Prints the path of every file written. The model is loaded in the Keras runtime it
was trained in (``keras_version`` in ``DIR/config.json``).
"""
import json
import os
import sys


def _flag_value(argv, name):
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _select_keras(argv):
    """Picks the runtime of the saved model; must run before TensorFlow is imported."""
    model_dir = _flag_value(argv, "model_dir")
    if "tensorflow" in sys.modules or not model_dir:
        return
    try:
        with open(os.path.join(model_dir, "config.json")) as f:
            version = json.load(f).get("keras_version", 2)
    except (OSError, ValueError):
        return  # write_samples reports the missing or broken file
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1" if version == 2 else "0")


_select_keras(sys.argv)

import numpy as np  # noqa: E402  (TensorFlow must see TF_USE_LEGACY_KERAS first)
from absl import app, flags  # noqa: E402

from keras_zoo import model_info  # noqa: E402
from keras_zoo.backend import keras, keras_major_version  # noqa: E402

FLAGS = flags.FLAGS


def _define_flags():
    """Defined only when run as a program: training.flags and export.tflite own some of these names."""
    flags.DEFINE_string("model_dir", None, "A training.train output directory (config.json + model.keras).")
    flags.DEFINE_integer("num", 16, "Number of images or audio clips.")
    flags.DEFINE_string("output_dir", None, "Where to write the samples (default: MODEL_DIR/samples).")
    flags.DEFINE_integer("seed", 0, "Seed of the sampling draws.")
    flags.DEFINE_float("temperature", 1.0, "Logits are divided by it before sampling.")
    flags.DEFINE_integer("length", 8000, "Audio samples per clip (audio models).")
    flags.DEFINE_integer("label", None, "Class id for conditional models (default: cycle through classes).")
    flags.mark_flag_as_required("model_dir")


def _load_run(model_dir):
    config_path = os.path.join(model_dir, "config.json")
    model_path = os.path.join(model_dir, "model.keras")
    for path in (config_path, model_path):
        if not os.path.isfile(path):
            raise ValueError(f"{path} is missing: pass the --model_dir of a finished training.train run. "
                             f"Received: --model_dir={model_dir!r}")
    with open(config_path) as f:
        run = json.load(f)
    if run.get("keras_version", keras_major_version()) != keras_major_version():
        raise ValueError(f"{model_dir} was trained under Keras {run['keras_version']} but this process runs "
                         f"Keras {keras_major_version()}; run `python -m training.sample` directly so it picks "
                         f"the runtime. Received: --model_dir={model_dir!r}")
    return run, keras.models.load_model(model_path, compile=False)


def _labels(num, classes, label):
    if classes is None:
        return None
    if label is not None and not 0 <= label < classes:
        raise ValueError(f"--label must be in [0, {classes}). Received: --label={label}")
    return np.full(num, label) if label is not None else np.arange(num) % classes


def image_grid(images, path, cell=64, columns=None):
    """Saves ``(N, H, W, C)`` images in [0, 1] as one PNG grid, each image scaled up to ``cell`` pixels.

    ``columns`` defaults to a square grid.
    """
    from PIL import Image

    num, height, width, channels = images.shape
    columns = columns or int(np.ceil(np.sqrt(num)))
    rows = int(np.ceil(num / columns))
    scale = max(1, cell // max(height, width))
    pad = 2
    grid = np.ones((rows * (height * scale + pad) + pad, columns * (width * scale + pad) + pad, channels))
    for index, image in enumerate(images):
        r, c = divmod(index, columns)
        big = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
        top, left = pad + r * (height * scale + pad), pad + c * (width * scale + pad)
        grid[top:top + height * scale, left:left + width * scale] = big
    pixels = (np.clip(grid, 0, 1) * 255).round().astype("uint8")
    Image.fromarray(pixels[..., 0] if channels == 1 else pixels).save(path)
    return path


def write_samples(model_dir, num=16, output_dir=None, seed=0, temperature=1.0, length=8000, label=None):
    """Samples a trained generator and writes the files; returns their paths."""
    if not isinstance(num, int) or num < 1:
        raise ValueError(f"--num must be a positive int. Received: --num={num!r}")
    run, model = _load_run(model_dir)
    info = model_info(run["model"])
    config = run.get("builder_config") or info.resolved_config(tiny=run.get("tiny", False))
    output_dir = output_dir or os.path.join(model_dir, "samples")
    os.makedirs(output_dir, exist_ok=True)
    if info.task == "image_generation":
        from keras_zoo.models.pixelcnn import sample_images

        labels = _labels(num, config.get("num_classes"), label)
        images = sample_images(model, num, seed=seed, temperature=temperature, labels=labels)
        return [image_grid(images, os.path.join(output_dir, "samples.png"))]
    if info.task == "gan":
        from training.tasks_gan import write_gan_samples

        return [write_gan_samples(model, os.path.join(output_dir, "samples.png"), num=num, seed=seed)]
    if info.task == "image_to_image":
        return [_translation_samples(run, info, config, model, num, os.path.join(output_dir, "samples.png"))]
    if info.task == "audio_generation":
        from keras_zoo.data.audio import SAMPLE_RATE, mu_law_decode, write_wav
        from keras_zoo.models.wavenet import generate

        if config.get("local_channels") is not None:
            raise ValueError("Sampling a locally conditioned WaveNet needs feature sequences; call "
                             "keras_zoo.models.wavenet.generate(..., local_features=...) from Python. "
                             f"Received: local_channels={config['local_channels']}")
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"--length must be a positive int. Received: --length={length!r}")
        rate = SAMPLE_RATE
        metrics_path = os.path.join(model_dir, "metrics.json")
        if os.path.isfile(metrics_path):
            with open(metrics_path) as f:
                rate = json.load(f).get("dataset_info", {}).get("sample_rate", SAMPLE_RATE)
        ids = generate(model, length, config=config, batch_size=num, seed=seed, temperature=temperature,
                       labels=_labels(num, config.get("global_classes"), label))
        audio = np.asarray(mu_law_decode(ids, config.get("quantization", 256)))
        return [write_wav(os.path.join(output_dir, f"sample_{i:03d}.wav"), clip, rate)
                for i, clip in enumerate(audio)]
    raise ValueError(f"training.sample writes samples of image_generation, gan, image_to_image and "
                     f"audio_generation models. "
                     f"Received: model {run['model']!r} with task {info.task!r}")


def _translation_samples(run, info, config, model, num, path):
    """Translates the first ``num`` test inputs of the run's dataset (data_dir from the run's settings)."""
    from keras_zoo.data import load_dataset
    from training.tasks_gan import write_translation_grid

    bundle = load_dataset(run["dataset"], task=info.task, input_specs=info.inputs_for(config), batch_size=1,
                          data_dir=run.get("training", {}).get("data_dir"))
    pairs = list(bundle.test.unbatch().take(num).as_numpy_iterator())
    if not pairs:
        raise ValueError(f"The test split of {run['dataset']!r} is empty. Received: --num={num}")
    inputs, targets = (np.stack(part) for part in zip(*pairs))
    return write_translation_grid(model, inputs, targets, path)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        paths = write_samples(FLAGS.model_dir, FLAGS.num, FLAGS.output_dir, FLAGS.seed, FLAGS.temperature,
                              FLAGS.length, FLAGS.label)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    for path in paths:
        print(path)


def run():
    _define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
