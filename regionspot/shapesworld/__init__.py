"""ShapesWorld, the miniature in one room: the world and its datasets, the tiny SAM and CLIP that play the
real backbones, their pre-training, and the build that trains everything and ships the embedded model.

``world`` (rendering), ``generate`` (datasets), ``streams`` (every random stream id), ``tiny_models``
(architectures, init, the test tokenizer, fp16 folders), ``progress`` (budgeted schedules),
``captions`` (CLIP's caption text), ``pretrain_clip`` / ``pretrain_sam``, ``report`` (the AP table) and
``build``.
"""
