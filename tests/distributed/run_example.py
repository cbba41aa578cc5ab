"""Run an example on a tiny MNIST written by the test: ``run_example.py SCRIPT DATA_DIR ARGS...``.

SCRIPT is a file name in examples/ (mnist_distributed.py, mnist_cnn.py).

The files under DATA_DIR/mnist are the test's own, so their MD5s replace the
published ones here (in every rank) before the example loads them.
"""

import hashlib
import runpy
import sys
from pathlib import Path

from jitgrad.data import mnist

script, data_dir = sys.argv[1], sys.argv[2]
folder = Path(data_dir) / "mnist"
mnist.MD5 = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in mnist.MD5}
sys.argv = [script, "--data-dir", data_dir, *sys.argv[3:]]
runpy.run_path(str(Path(__file__).parents[2] / "examples" / script), run_name="__main__")
