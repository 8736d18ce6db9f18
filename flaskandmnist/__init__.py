"""flaskandmnist: handwritten-digit recognition with Flask, a LiteRT mnist_deep model (trained
with TensorFlow) and Cassandra."""

import os

# TensorFlow (training and export only) prints pages of C++ start-up notices; keep warnings
# and errors only.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
