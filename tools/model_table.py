"""Regenerates the model table in README.md from the registry.

    python tools/model_table.py          # rewrite README.md between the markers
    python tools/model_table.py --check  # exit 1 if README.md is out of date
"""
import pathlib
import sys

from keras_zoo.cli import model_table

BEGIN, END = "<!-- model-table:begin -->", "<!-- model-table:end -->"
README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def updated_readme(text):
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{model_table(markdown=True)}\n{END}{tail}"


if __name__ == "__main__":
    import keras_zoo  # noqa: F401

    text = README.read_text()
    new = updated_readme(text)
    if "--check" in sys.argv:
        sys.exit(0 if new == text else 1)
    README.write_text(new)
    print(f"updated {README}")
