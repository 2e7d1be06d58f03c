"""Regenerate the S1 coefficients compiled into the SDK's example model binary.

Usage: ``python benchmarks/s1_coefficients.py`` (writes
``operators/sdk/examples/s1_logistic.json``: ``[intercept, w0, ..., w31]``).
The file is plain JSON and, read by ``include!``, a Rust array expression.
"""

from pathlib import Path

from streamml_dev.workloads import train_s1

OUT = Path(__file__).resolve().parent.parent / "operators" / "sdk" / "examples" / "s1_logistic.json"


def main() -> None:
    """Train S1 and write its coefficients."""
    model = train_s1()
    values = [float(model.intercept_[0]), *(float(c) for c in model.coef_[0])]
    # repr() keeps every float exact and always writes a '.' or an exponent,
    # so each element is an f64 literal for Rust as well.
    OUT.write_text("[" + ", ".join(repr(v) for v in values) + "]\n")
    print(f"wrote {len(values)} values to {OUT}")


if __name__ == "__main__":
    main()
