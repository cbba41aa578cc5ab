"""Neural-network layers, losses, optimizers and training."""
