"""Run examples/mnist_distributed.py on a tiny MNIST written by the test: ``run_example.py DATA_DIR ARGS...``.

The files under DATA_DIR/mnist are the test's own, so their MD5s replace the
published ones here (in every rank) before the example loads them.
"""

import hashlib
import runpy
import sys
from pathlib import Path

from jitgrad.data import mnist

folder = Path(sys.argv[1]) / "mnist"
mnist.MD5 = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in mnist.MD5}
sys.argv = ["mnist_distributed.py", "--data-dir", sys.argv[1], *sys.argv[2:]]
runpy.run_path(str(Path(__file__).parents[2] / "examples" / "mnist_distributed.py"), run_name="__main__")
