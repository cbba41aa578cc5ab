"""An ONNX backend (``onnx.backend.base.Backend``) that runs graphs on jitgrad's ops.

It lets the onnx package's conformance runner drive jitgrad exactly as it
drives onnxruntime::

    import onnx.backend.test
    import jitgrad.onnx.backend as backend
    globals().update(onnx.backend.test.BackendTest(backend, __name__).include("test_relu").test_cases)

Devices: ``"CPU"``, and ``"CUDA"`` where jitgrad has a CUDA device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep, Device, DeviceType

from jitgrad.autograd.grad_mode import no_grad
from jitgrad.autograd.tensor import Tensor
from jitgrad.onnx._converters import CONVERTERS
from jitgrad.onnx._import import OnnxModule

__all__ = ["JitgradBackend", "JitgradRep", "prepare", "run_model", "run_node", "supports_device"]


def _device_name(device: str) -> str:
    kind = Device(device).type
    return "cuda" if kind == DeviceType.CUDA else "cpu"


class JitgradRep(BackendRep):
    """A prepared model: an :class:`OnnxModule` in eval mode on one device."""

    def __init__(self, module: OnnxModule, device: str) -> None:
        self.module = module
        self.device = device

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, dict):
            inputs = [inputs[n] for n in self.module.input_names]
        elif isinstance(inputs, np.ndarray):
            inputs = [inputs]
        args = [Tensor(np.ascontiguousarray(a)) for a in inputs]
        if self.device != "cpu":
            args = [a.to(self.device) if a.dtype.kind == "f" else a for a in args]
        with no_grad():
            out = self.module(*args)
        outs = out if isinstance(out, tuple) else (out,)
        return tuple(np.asarray(o.numpy()) for o in outs)


class JitgradBackend(Backend):
    """jitgrad as an ONNX backend: ``prepare`` imports the graph (:func:`jitgrad.onnx.load`)."""

    @classmethod
    def is_compatible(cls, model: Any, device: str = "CPU", **kwargs: Any) -> bool:
        return all(n.op_type in CONVERTERS for n in model.graph.node)

    @classmethod
    def prepare(cls, model: Any, device: str = "CPU", **kwargs: Any) -> JitgradRep:
        super().prepare(model, device, **kwargs)
        onnx.checker.check_model(model)
        module = OnnxModule(model).eval()
        name = _device_name(device)
        if name != "cpu":
            module.to(name)
        return JitgradRep(module, name)

    @classmethod
    def run_model(cls, model: Any, inputs: Any, device: str = "CPU", **kwargs: Any) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: Any, inputs: Any, device: str = "CPU", outputs_info: Any = None,
                 **kwargs: Any) -> tuple[np.ndarray, ...]:
        from onnx import helper

        names = [n for n in node.input if n]
        graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.asarray(a).dtype),
                                                      np.asarray(a).shape) for n, a in zip(names, inputs)]
        graph_outputs = [helper.make_empty_tensor_value_info(n) for n in node.output if n]
        graph = helper.make_graph([node], "run_node", graph_inputs, graph_outputs)
        opset = kwargs.get("opset_version", onnx.defs.onnx_opset_version())
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", min(opset, 25))])
        module = OnnxModule(model).eval()
        rep = JitgradRep(module, _device_name(device))
        return rep.run(list(inputs))

    @classmethod
    def supports_device(cls, device: str) -> bool:
        kind = Device(device).type
        if kind == DeviceType.CPU:
            return True
        if kind == DeviceType.CUDA:
            from jitgrad import cuda
            return bool(cuda.is_available())
        return False


prepare = JitgradBackend.prepare
run_model = JitgradBackend.run_model
run_node = JitgradBackend.run_node
supports_device = JitgradBackend.supports_device
is_compatible = JitgradBackend.is_compatible

