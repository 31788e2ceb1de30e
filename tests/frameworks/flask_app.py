"""A Flask app built by a factory with ConveyorExtension, as tests/frameworks/test_flask.py
uses it (and as docs/flask.md shows)."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, jsonify, request

from conveyor.contrib.flask import ConveyorExtension

jobs = ConveyorExtension()


@jobs.task(queue="mail")
def send_welcome(email: str) -> dict[str, str]:
    # Runs inside the Flask app's context: current_app is the app the factory made.
    return {"email": email, "app": current_app.name, "sender": current_app.config["MAIL_SENDER"]}


def create_app(config: dict[str, Any]) -> Flask:
    app = Flask("shop")
    app.config.update({"MAIL_SENDER": "shop@example.com", **config})
    jobs.init_app(app)

    @app.post("/signup")
    def signup() -> Any:
        job = send_welcome.enqueue(request.form["email"])
        return jsonify(job=job.id), 202

    return app
