"""Weight sharing with per-layer k-means codebooks (Deep Compression stage 2).

Each layer's surviving (non-zero) weights are clustered into at most ``2**bits`` values with
1-D k-means, centroids initialised linearly between the min and max weight (the paper found
linear initialisation keeps the rare large weights that matter most). Fine-tuning then
updates the centroids with the shared gradient, the sum of the gradients of the weights in
each cluster; pruned weights stay exactly zero.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecn.compress.finetune import train_epochs


def kmeans_1d(values: torch.Tensor, n_clusters: int, iters: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster 1-D ``values`` with linear initialisation; empty clusters are dropped.

    Returns:
        ``(centroids, labels)``: at most ``n_clusters`` sorted float32 centroids and the
        cluster of every value.
    """
    values = values.detach().reshape(-1).double()
    if values.numel() == 0:
        return torch.zeros(0), torch.zeros(0, dtype=torch.long)
    centroids = torch.linspace(float(values.min()), float(values.max()), n_clusters, dtype=torch.float64)
    labels = None
    for _ in range(iters):
        # In 1-D the nearest centroid is found by the midpoints between sorted centroids.
        new = torch.searchsorted((centroids[:-1] + centroids[1:]) / 2, values)
        if labels is not None and torch.equal(new, labels):
            break
        labels = new
        sums = torch.zeros_like(centroids).index_add_(0, labels, values)
        counts = torch.bincount(labels, minlength=centroids.numel()).double()
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
    used = torch.unique(labels)
    remap = torch.full((centroids.numel(),), -1, dtype=torch.long)
    remap[used] = torch.arange(used.numel())
    return centroids[used].float(), remap[labels]


class SharedLayer:
    """One layer's codebook: its centroids (trainable), and each surviving weight's position and cluster."""

    def __init__(self, module: nn.Module, bits: int, iters: int):
        self.module = module
        flat = module.weight.detach().reshape(-1)
        self.positions = torch.nonzero(flat).reshape(-1)
        centroids, self.labels = kmeans_1d(flat[self.positions], 1 << bits, iters)
        self.centroids = nn.Parameter(centroids)
        self.write()

    @torch.no_grad()
    def write(self) -> None:
        """Set every surviving weight to its centroid; pruned positions stay zero."""
        flat = self.module.weight.view(-1)
        flat.zero_()
        flat[self.positions] = self.centroids[self.labels]

    def pool_grad(self) -> None:
        """The centroid gradient: the sum of the gradients of the weights in each cluster."""
        grad = self.module.weight.grad
        if grad is None:
            return
        g = grad.reshape(-1)[self.positions]
        self.centroids.grad = torch.zeros_like(self.centroids).index_add_(0, self.labels, g)


def share_weights(model: nn.Module, train_data, bits: dict[str, int], *, epochs: int, lr: float,
                  centroid_lr: float, momentum: float, weight_decay: float, batch_size: int, optimizer: str = "sgd",
                  kmeans_iters: int = 50, seed: int = 0, progress: bool = False) -> dict[str, int]:
    """Quantise the named layers of ``model`` in place to shared codebooks and fine-tune them.

    Args:
        bits: layer name -> codebook bits (at most ``2**bits`` distinct non-zero values).
        epochs: fine-tuning epochs; centroids use ``centroid_lr``, every parameter that is
            not a shared weight (biases, BatchNorm) uses ``lr``.

    Returns:
        Codebook size (distinct non-zero values) per layer after fine-tuning.
    """
    modules = dict(model.named_modules())
    shared = {name: SharedLayer(modules[name], b, kmeans_iters) for name, b in bits.items()}
    shared_ids = {id(s.module.weight) for s in shared.values()}
    others = [p for p in model.parameters() if id(p) not in shared_ids]
    # Centroids carry no weight decay: their gradient is already a sum over a cluster.
    groups = [{"params": others, "lr": lr},
              {"params": [s.centroids for s in shared.values()], "lr": centroid_lr, "weight_decay": 0.0}]

    def pool():
        for s in shared.values():
            s.pool_grad()

    def write():
        for s in shared.values():
            s.write()

    train_epochs(model, train_data, epochs, groups, lr=lr, momentum=momentum, weight_decay=weight_decay, optimizer=optimizer,
                 batch_size=batch_size, seed=seed, after_backward=pool, after_step=write,
                 progress=progress, desc="weight sharing")
    return {name: int(torch.unique(s.centroids.detach()[s.labels]).numel()) for name, s in shared.items()}
