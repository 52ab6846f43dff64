"""`keras-zoo`: inspect the registry from the shell.

    keras-zoo list [PATTERN] [--task TASK] [--markdown]
    keras-zoo info NAME
"""
import argparse
import json
import sys


def _edgetpu_cell(export):
    edgetpu = export.get("edgetpu")
    if edgetpu is True:
        return "yes"
    return "no" if not edgetpu else "no*"


def model_table(pattern="*", task=None, markdown=False):
    """The registry as a text (or Markdown) table, one row per variant."""
    from keras_zoo.registry import list_models, model_info

    header = ("name", "task", "paper", "reference params", "tflite", "edgetpu")
    rows = []
    for name in list_models(pattern, task=task):
        info = model_info(name)
        params = f"{info.reference_params:,}" if info.reference_params else "-"
        rows.append((
            name, info.task, info.paper, params,
            "yes" if info.export.get("tflite") else "no", _edgetpu_cell(info.export),
        ))
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))]
                     + [fmt.format(*row) for row in rows])


def _info(name):
    from keras_zoo.registry import model_info

    info = model_info(name)
    return json.dumps({
        "name": info.name, "family": info.family, "task": info.task, "paper": info.paper,
        "config": info.config, "tiny": info.tiny, "reference_params": info.reference_params,
        "reference_source": info.reference_source, "default_dataset": info.default_dataset,
        "export": info.export,
    }, indent=2, default=str)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="keras-zoo", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    list_cmd = commands.add_parser("list", help="print the registry as a table")
    list_cmd.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'densenet*'")
    list_cmd.add_argument("--task", default=None)
    list_cmd.add_argument("--markdown", action="store_true")
    info_cmd = commands.add_parser("info", help="print one variant's metadata as JSON")
    info_cmd.add_argument("name")
    args = parser.parse_args(argv)

    import keras_zoo  # noqa: F401  (registers the families; imports TensorFlow)

    try:
        if args.command == "list":
            print(model_table(args.pattern, task=args.task, markdown=args.markdown))
        else:
            print(_info(args.name))
    except ValueError as error:
        print(f"keras-zoo: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
