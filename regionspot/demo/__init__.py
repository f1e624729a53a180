"""The web demo (optional extra ``[demo]``): ``regionspot serve``.

``service.py`` holds what a request does (one model instance, a lock, the server's limits; no web code);
``app.py`` is the Gradio page and the ``/label`` API over it. Import ``regionspot.demo.app`` only with the
extra installed.
"""
