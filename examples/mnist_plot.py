"""The --plot figure of examples/mnist_cnn.py: loss and accuracy curves and the misclassified digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot"]


def plot(path: Path, history: dict[str, list[float]], images: np.ndarray, labels: np.ndarray,
         predictions: np.ndarray, title: str) -> None:
    """Loss and accuracy curves, and a grid of misclassified test digits, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["train_loss"]) + 1)
    wrong = np.flatnonzero(predictions != labels)[:40]
    fig = plt.figure(figsize=(12, 8.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.15])
    ax_loss, ax_acc = top.subplots(1, 2)
    ax_loss.plot(epochs, history["train_loss"], "o-", label="train")
    ax_loss.plot(epochs, history["test_loss"], "s-", label="test")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss", yscale="log")
    ax_acc.plot(epochs, 100 * np.asarray(history["train_acc"]), "o-", label="train")
    ax_acc.plot(epochs, 100 * np.asarray(history["test_acc"]), "s-", label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    top.suptitle(title)
    bottom.suptitle(f"misclassified test digits ({np.count_nonzero(predictions != labels)} of {len(labels)}): "
                    "predicted / true")
    grid = bottom.subplots(4, 10)
    for ax, i in zip(grid.flat, np.concatenate([wrong, -np.ones(40 - len(wrong), int)])):
        ax.axis("off")
        if i >= 0:
            ax.imshow(images[i], cmap="gray_r")
            ax.set_title(f"{predictions[i]} / {labels[i]}", fontsize=9, color="crimson")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
