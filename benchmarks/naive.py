"""A seed-style server, the baseline of ``benchmarks.load --baseline naive``. Never deploy it.

What a first version of this service looks like: Flask, the image resized to 28x28 with PIL,
Keras ``model.predict`` on every request, nothing stored. It takes the same requests as the
service (a JSON data URI or a raw image body on POST /api/v1/predictions) and answers 201,
so the load benchmark drives both alike.

    gunicorn --config python:flaskandmnist.gunicorn_conf "benchmarks.naive:create_app()"
"""

from __future__ import annotations

import base64
import io

import numpy as np
from flask import Flask, Response, jsonify, request
from PIL import Image, ImageOps

from flaskandmnist.config import DEFAULT_MODEL_PATH
from flaskandmnist.model import build_model


def create_app() -> Flask:
    app = Flask(__name__)
    model = build_model()
    model.load_weights(DEFAULT_MODEL_PATH)

    @app.get("/readyz")
    def ready() -> str:
        return "ok"

    @app.post("/api/v1/predictions")
    def predict() -> tuple[Response, int]:
        if request.is_json:
            data = base64.b64decode(request.get_json()["image"].split(",", 1)[1])
        else:
            data = request.get_data()
        image = Image.open(io.BytesIO(data)).convert("L").resize((28, 28))
        pixels = np.asarray(ImageOps.invert(image), np.float32)[None] / 255.0
        logits = model.predict(pixels, verbose=0)[0]
        return jsonify(digit=int(np.argmax(logits))), 201

    return app
