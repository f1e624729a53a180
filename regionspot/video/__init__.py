"""Labelled tracks in video: frames streamed from a folder or a video file (``frames``), objects propagated from a
prompt frame (``propagate``: the toy re-prompting tracker; ``sam2_video``: a SAM 2 family video model), labelled by
the head on every frame with one label per track (``labels``), and the resumable run that writes it all (``run``)."""
