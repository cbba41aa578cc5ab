"""Post-accumulate-grad hooks and end-of-backward callbacks (what data-parallel training builds on)."""

import numpy as np
import pytest

import jitgrad
from jitgrad.autograd import engine


def test_hook_sees_the_final_gradient_summed_over_every_path():
    x = jitgrad.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    handle = x.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    (x * x + x * 3.0).sum().backward()  # two paths into x: the hook runs once, with 2x + 3
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], [5.0, 7.0])
    (x * 2.0).sum().backward()  # accumulated: the hook sees the running total
    np.testing.assert_allclose(seen[1], [7.0, 9.0])
    handle.remove()
    (x * 2.0).sum().backward()
    assert len(seen) == 2


def test_hooks_run_in_order_while_backward_still_runs_and_callbacks_after():
    a = jitgrad.tensor([1.0], requires_grad=True)
    b = jitgrad.tensor([2.0], requires_grad=True)
    events = []

    def hook(name):
        def run(t):
            events.append(name)
            if name == "a":
                engine.queue_callback(lambda: events.append(("done", a.grad.item(), b.grad.item())))
        return run

    a.register_post_accumulate_grad_hook(hook("a"))
    a.register_post_accumulate_grad_hook(hook("a2"))
    b.register_post_accumulate_grad_hook(hook("b"))
    ((a * 3.0) * b).sum().backward()
    assert events[-1] == ("done", 6.0, 3.0)
    assert events.index("a") + 1 == events.index("a2") and len(events) == 4


def test_bad_hooks_and_callbacks_outside_backward_are_refused():
    x = jitgrad.tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="hook must be callable, got int"):
        x.register_post_accumulate_grad_hook(3)
    with pytest.raises(RuntimeError, match="only leaf tensors"):
        (x * 2.0).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(RuntimeError, match="only callable while backward"):
        engine.queue_callback(lambda: None)
