"""Model classes streamml trains itself, with scikit-learn's estimator API.

Training runs in Rust (``operators/train``); a fitted model compiles to a
model binary with ``streamml compile`` like any other model.
"""

from streamml.models.fft import FastFrugalTreeClassifier, FFTDescription

__all__ = ["FFTDescription", "FastFrugalTreeClassifier"]
