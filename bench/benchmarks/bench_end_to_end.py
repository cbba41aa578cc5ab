"""asv benchmarks of whole models: one training step and one inference batch at batch 128."""

from . import models


class EndToEnd:
    """LeNet-5 and the Keras convnet on MNIST-shaped batches of 128 images.

    The training step is forward, cross-entropy, backward and an Adam update;
    inference is one forward pass in eval mode under ``no_grad``.
    """

    params = [list(models.MODELS), list(models.DEVICES)]
    param_names = ["model", "backend"]
    rounds = 1
    repeat = (3, 10, 5.0)
    warmup_time = 0.2
    timeout = 600

    def setup(self, model, backend):
        self.step = models.train_step(model, backend)
        self.forward = models.inference(model, backend)
        # Compile (or load from the cache) every kernel before timing.
        self.step()
        self.forward()

    def time_train_step(self, model, backend):
        self.step()

    def time_inference(self, model, backend):
        self.forward()

    def peakmem_train_step(self, model, backend):
        self.step()
