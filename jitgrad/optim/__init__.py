"""Optimizers over fused update kernels, and learning-rate schedules.

``jitgrad.optim.SGD``, ``Adam``, ``AdamW``; schedules live in
``jitgrad.optim.lr_scheduler`` and are re-exported here.
"""

from jitgrad.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, OneCycleLR, ReduceLROnPlateau, StepLR
from jitgrad.optim.optimizer import SGD, Adam, AdamW, Optimizer

__all__ = ["Optimizer", "SGD", "Adam", "AdamW",
           "LRScheduler", "StepLR", "CosineAnnealingLR", "OneCycleLR", "ReduceLROnPlateau"]
