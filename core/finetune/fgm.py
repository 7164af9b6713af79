"""FGM (fast gradient method, Miyato et al. 2017) adversarial training on the input embedding matrix.

After the clean backward pass, the embedding weights are moved by ``epsilon * g / ||g||`` (g: their gradient),
a second forward/backward on the same batch adds the adversarial gradient to the trainable weights, and the
embedding weights are restored bit-for-bit from a copy. With a frozen embedding (peft methods) the weight is
made to require grad only so that g exists; its gradient is dropped after each step and never reaches the
optimizer. When the embedding is tied to the output head (SmolLM2), the head sees the same perturbation, as in
the usual FGM on tied BERT-style models.
"""

from __future__ import annotations

import torch
from torch import nn


class FGM:
    """Attack/restore helper for one model.

    Args:
        model: the model being trained (peft wrappers included).
        epsilon: size of the perturbation (L2 norm over the whole embedding matrix).
    """

    def __init__(self, model: nn.Module, epsilon: float) -> None:
        self.weight: nn.Parameter = model.get_input_embeddings().weight  # type: ignore[operator]
        self.epsilon = epsilon
        self.frozen = not self.weight.requires_grad
        self.weight.requires_grad_(True)
        self._backup: torch.Tensor | None = None

    def attack(self) -> bool:
        """Perturb the embedding along its gradient. Returns False (and does nothing) when the gradient is
        missing, zero or non-finite."""
        grad = self.weight.grad
        if grad is None:
            return False
        norm = torch.linalg.vector_norm(grad)
        if not torch.isfinite(norm) or norm == 0:
            return False
        self._backup = self.weight.data.clone()
        self.weight.data.add_(grad, alpha=float(self.epsilon / norm))
        return True

    def restore(self) -> None:
        """Put back the exact weights saved by `attack`, and drop the gradient of a frozen embedding."""
        if self._backup is not None:
            self.weight.data.copy_(self._backup)
            self._backup = None
        if self.frozen:
            self.weight.grad = None

    def close(self) -> None:
        """Undo the requires_grad change on a frozen embedding."""
        self.restore()
        if self.frozen:
            self.weight.requires_grad_(False)
