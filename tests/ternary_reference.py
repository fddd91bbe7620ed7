"""Plain numpy backpropagation of a ternary network's output and backward passes, the
reference the hardware gradients of the ternary tests are held to."""

import numpy as np


def plain_deltas(model, xs, W, y, flags, to_counts=lambda k, d: d):
    """The error of every array of ``model`` (float weights ``W``, drives ``xs``, window
    flags of the hidden arrays): softmax at the digitised outputs, DAC-scaled transposed
    reads clipped to the row ADC's range, gated by the flags; ``to_counts(k, d)`` maps the
    gated error of hidden array ``k`` to the error at its counts."""
    root = np.sqrt(W[-1].shape[0])
    logits = model.output_scale * np.clip(xs[-1] @ W[-1], -4 * root, 4 * root) / root
    prob = np.exp(logits - logits.max(1, keepdims=True))
    deltas = [prob / prob.sum(1, keepdims=True) - np.eye(10)[y]]
    for k in range(len(W) - 1, 0, -1):
        d = deltas[0]
        scale = np.abs(d).max(1, keepdims=True)
        full = min(W[k].shape[1], 4 * np.sqrt(W[k].shape[1]))
        back = np.clip((d / scale) @ W[k].T, -full, full) * scale
        deltas.insert(0, to_counts(k - 1, back[:, :W[k].shape[0] - model.bias_rows] * flags[k - 1]))
    return deltas
