"""Converters from released checkpoint files to our formats: SAM ``.pth`` (``sam``), OpenAI CLIP ``.pt``
(``clip``); ``torch_io`` reads them without running pickled code. The RegionSpot head converter lives in
``regionspot.checkpoint`` beside the head format it writes."""
