"""Implementations of masked training written against the user-trainer protocol.

``numpy_masked`` (pure NumPy) and ``torch_masked`` (PyTorch, optional extra ``torch``)
conform to the reference algorithm; ``broken`` holds plausible-looking wrong
implementations that ``python -m verify conform`` must reject (negative controls).
"""
