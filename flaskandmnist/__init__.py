"""flaskandmnist: handwritten-digit recognition with Flask, TensorFlow and Cassandra."""

import os

# TensorFlow prints pages of C++ start-up notices; keep warnings and errors only.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
