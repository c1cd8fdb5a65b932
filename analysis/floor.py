"""The linear-readout floor: what a softmax regression reads from the same inputs a network sees.

A spiking network trained on a dataset should do at least as well as a linear classifier of
the input's summary statistics on the same split; for N-MNIST that summary is the number of
events of each pixel and polarity in the recording's window. The classifier here is multinomial
logistic regression, p(k | x) = softmax(W·z + b)_k with z the features standardised by the
training set's mean and standard deviation, fitted by L-BFGS on the mean cross-entropy plus
(α/2)·‖W‖² (b not penalised). α is chosen from a small grid on a validation slice held out
from the END of the training set, then the model is refitted on the whole training set with
that α; the test set is only scored, never used to choose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: L2 strengths tried on the validation slice (α of the module docstring).
DEFAULT_PENALTIES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


@dataclass
class SoftmaxRegression:
    """A fitted readout: standardisation and the (n_classes × n_features) weights and biases."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    biases: np.ndarray

    def scores(self, features: np.ndarray) -> np.ndarray:
        z = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        return z @ self.weights.T + self.biases

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.scores(features).argmax(axis=1)

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        return float((self.predict(features) == np.asarray(labels)).mean())


def fit_softmax_regression(features, labels, n_classes: int, penalty: float = 1e-2,
                           max_iterations: int = 500) -> SoftmaxRegression:
    """Multinomial logistic regression on standardised features (module docstring)."""
    from scipy.optimize import minimize

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    if x.ndim != 2 or len(x) != len(y) or len(y) == 0:
        raise ValueError(f"features must be [N, n_features] with one label each, got {x.shape} and {y.shape}")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes}), got {y.min()}..{y.max()}")
    if penalty < 0:
        raise ValueError(f"penalty must be ≥ 0, got {penalty}")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    varying = scale > 0  # a constant feature carries nothing: its weight stays 0 (fitted on the others)
    scale[~varying] = 1.0
    z = ((x - mean) / scale)[:, varying]
    n, n_features = z.shape
    targets = np.zeros((n, n_classes))
    targets[np.arange(n), y] = 1.0

    def loss_and_gradient(flat):
        weights = flat[: n_classes * n_features].reshape(n_classes, n_features)
        biases = flat[n_classes * n_features:]
        scores = z @ weights.T + biases
        scores -= scores.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(scores).sum(axis=1, keepdims=True))
        log_p = scores - log_norm
        loss = -(targets * log_p).sum() / n + 0.5 * penalty * (weights**2).sum()
        error = (np.exp(log_p) - targets) / n  # ∂loss/∂scores
        gradient_w = error.T @ z + penalty * weights
        return loss, np.concatenate([gradient_w.ravel(), error.sum(axis=0)])

    start = np.zeros(n_classes * (n_features + 1))
    result = minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B",
                      options={"maxiter": max_iterations})
    weights = np.zeros((n_classes, x.shape[1]))
    weights[:, varying] = result.x[: n_classes * n_features].reshape(n_classes, n_features)
    return SoftmaxRegression(mean, scale, weights, result.x[n_classes * n_features:])


@dataclass
class Floor:
    """What :func:`linear_readout_floor` measured."""

    test_accuracy: float
    train_accuracy: float
    penalty: float  # α chosen on the validation slice
    validation_accuracy: dict[float, float] = field(default_factory=dict)  # α → accuracy
    n_train: int = 0
    n_validation: int = 0
    n_test: int = 0
    n_features: int = 0

    def as_dict(self) -> dict:
        return {"test_accuracy": self.test_accuracy, "train_accuracy": self.train_accuracy,
                "penalty": self.penalty, "n_train": self.n_train, "n_validation": self.n_validation,
                "n_test": self.n_test, "n_features": self.n_features,
                "validation_accuracy": {str(k): v for k, v in self.validation_accuracy.items()}}


def linear_readout_floor(train_features, train_labels, test_features, test_labels, n_classes: int,
                         penalties=DEFAULT_PENALTIES, validation_fraction: float = 0.1) -> Floor:
    """Test accuracy of the softmax regression whose α did best on the training set's last slice."""
    train_features = np.asarray(train_features, dtype=np.float64)
    train_labels = np.asarray(train_labels, dtype=int)
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must lie in (0, 1), got {validation_fraction}")
    if not penalties:
        raise ValueError("penalties must name at least one L2 strength")
    n_validation = max(1, int(round(validation_fraction * len(train_labels))))
    if n_validation >= len(train_labels):
        raise ValueError(f"{len(train_labels)} training samples leave none to fit after the validation slice")
    fit_x, fit_y = train_features[:-n_validation], train_labels[:-n_validation]
    held_x, held_y = train_features[-n_validation:], train_labels[-n_validation:]
    validation = {float(a): fit_softmax_regression(fit_x, fit_y, n_classes, a).accuracy(held_x, held_y)
                  for a in penalties}
    best = max(validation, key=lambda a: (validation[a], a))  # ties: the stronger penalty
    readout = fit_softmax_regression(train_features, train_labels, n_classes, best)
    return Floor(test_accuracy=readout.accuracy(test_features, test_labels),
                 train_accuracy=readout.accuracy(train_features, train_labels), penalty=best,
                 validation_accuracy=validation, n_train=len(train_labels), n_validation=n_validation,
                 n_test=len(test_labels), n_features=train_features.shape[1])
