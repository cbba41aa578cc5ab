"""Neural networks: ``Module``, layers, initialisers, the functional API and ``fit``.

``jitgrad.nn.functional`` holds the stateless ops (activations, pooling,
losses) built on the autograd; the layers here hold parameters and call it.
Optimizers and schedules are in :mod:`jitgrad.optim`, checkpoints in
:mod:`jitgrad.serialization`.
"""

from jitgrad.nn import functional, init
from jitgrad.nn.init import manual_seed
from jitgrad.nn.layers import (
    ELU, GELU, AvgPool2d, Chain, Conv2d, Dense, Dropout, Flatten, LeakyReLU, Linear, LogSoftmax, MaxPool2d, ReLU,
    Sequential, Sigmoid, Softmax, Softplus, Tanh,
)
from jitgrad.nn.module import Module, Parameter
from jitgrad.nn.normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm, LocalResponseNorm
from jitgrad.nn.containers import ModuleDict, ModuleList
from jitgrad.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from jitgrad.nn.conv_layers import (
    AdaptiveAvgPool2d, AdaptiveMaxPool2d, ConvTranspose2d, GlobalAvgPool, GlobalMeanPool, Identity, Parallel,
    SkipConnection,
)
from jitgrad.nn.recurrent import GRU, LSTM, RNN, Embedding, GRUCell, LSTMCell, RNNCell
from jitgrad.nn import utils  # noqa: E402  (after recurrent: utils needs nothing of nn, kept last)
from jitgrad.nn.training import (
    Callback, EarlyStopping, History, ModelCheckpoint, TrainingState, evaluate, fit, throttle,
)
from jitgrad.nn.callbacks import TerminateOnNaN

__all__ = [
    "functional", "init", "manual_seed",
    "Module", "Parameter",
    "Linear", "Dense", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "Dropout",
    "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "ELU", "Softplus", "Softmax", "LogSoftmax",
    "Sequential", "Chain",
    "fit", "evaluate", "History", "TrainingState", "Callback", "EarlyStopping", "ModelCheckpoint", "throttle",
    "TerminateOnNaN",
    "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm",
    "ModuleList", "ModuleDict",
    "CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss",
    "ConvTranspose2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "GlobalAvgPool", "GlobalMeanPool", "Identity",
    "SkipConnection", "Parallel",
    "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "Embedding", "utils",
    "LocalResponseNorm",
]
