"""Hoist example: a WSGI app served by gunicorn (installed from requirements.txt)."""
import platform

import gunicorn


def app(environ, start_response):
    body = f"Hello from Python {platform.python_version()}, dep ok (gunicorn {gunicorn.__version__})\n"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
