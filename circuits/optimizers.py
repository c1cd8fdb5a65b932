"""The optimizers every numpy form steps its weights with: plain gradient descent and Adam
(Kingma & Ba 2015). One interface for both:

- ``parameters``: the arrays stepped in place (rebind it to step other arrays of the same shapes,
  as BioGrad's numpy form does with its trainer's weights; Adam's moments stay);
- ``lr``: the step size, set before each step where a schedule scales it;
- ``step(gradients)``: one step against one gradient per parameter, in the same order;
- ``state_arrays(names)`` / ``load_state_arrays(arrays, names, dtype)``: what a checkpoint holds of
  the optimizer, ``names`` naming the parameters in order: ``optimizer_steps``, and for Adam
  ``adam_m_<name>`` and ``adam_v_<name>``, so a resumed run continues exactly.
"""

from __future__ import annotations

import numpy as np

__all__ = ["GradientDescent", "Adam"]


class GradientDescent:
    """Plain gradient descent: p −= lr·∂L/∂p (no moments to checkpoint)."""

    def __init__(self, parameters, lr):
        self.parameters = list(parameters)
        self.lr = lr
        self.step_count = 0

    def step(self, gradients):
        self.step_count += 1
        for p, grad in zip(self.parameters, gradients):
            p -= self.lr * grad

    def state_arrays(self, names) -> dict[str, np.ndarray]:
        return {"optimizer_steps": np.array(self.step_count)}

    def load_state_arrays(self, arrays, names, dtype) -> None:
        self.step_count = int(arrays["optimizer_steps"])


class Adam:
    """Adam (Kingma & Ba 2015): each parameter moves by its own running first and second moments
    of its gradient."""

    def __init__(self, parameters, lr=1e-4, betas=(0.9, 0.999), eps=1e-8):
        self.parameters = list(parameters)
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.step_count = 0
        self.first_moment = [np.zeros_like(p) for p in self.parameters]
        self.second_moment = [np.zeros_like(p) for p in self.parameters]

    def step(self, gradients):
        gradients = list(gradients)
        if len(gradients) != len(self.parameters):
            raise ValueError(
                f"got {len(gradients)} gradients for {len(self.parameters)} parameters"
            )
        self.step_count += 1
        # bias corrections folded into the step size (Kingma & Ba, Algorithm 1 note)
        correction1 = 1.0 - self.beta1**self.step_count
        correction2 = 1.0 - self.beta2**self.step_count
        step_size = self.lr * np.sqrt(correction2) / correction1
        eps = self.eps * np.sqrt(correction2)
        for p, grad, m, v in zip(
            self.parameters, gradients, self.first_moment, self.second_moment
        ):
            m *= self.beta1
            m += (1.0 - self.beta1) * grad
            v *= self.beta2
            v += (1.0 - self.beta2) * np.square(grad)
            p -= step_size * m / (np.sqrt(v) + eps)

    def state_arrays(self, names) -> dict[str, np.ndarray]:
        arrays = {"optimizer_steps": np.array(self.step_count)}
        for name, m, v in zip(names, self.first_moment, self.second_moment):
            arrays[f"adam_m_{name}"] = m
            arrays[f"adam_v_{name}"] = v
        return arrays

    def load_state_arrays(self, arrays, names, dtype) -> None:
        self.step_count = int(arrays["optimizer_steps"])
        self.first_moment = [np.array(arrays[f"adam_m_{name}"], dtype=dtype) for name in names]
        self.second_moment = [np.array(arrays[f"adam_v_{name}"], dtype=dtype) for name in names]
