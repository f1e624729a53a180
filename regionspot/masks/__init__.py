"""regionspot.masks: every piece of mask code, at leaf level (numpy, ``regionspot.errors`` and ``regionspot.utils``;
torch is imported inside the functions that take or make tensors, so the numpy paths run without it).

- ``resize``: nearest resize of binary masks; a segmenter's low-resolution mask logits brought to image
  pixels (``MaskFrame``, ``upsample_mask_logits``) and any window of that resize computed alone, bit for bit
  (``resize_logits_window``: the taps, weights and rounding of torch's CPU bilinear kernel); ``bilinear_window``,
  the one bilinear resize in numpy (whole or a window; also ``data.pixels.bilinear_resize``).
- ``base``: the ``RegionMasks`` interface (one region at a time), ``DenseMasks``, ``mask_to_box``.
- ``lowres``: ``LowResMasks``, a result's masks kept as the low-resolution logits (upsampled as torch's CPU
  kernel does, or with ``kernel="numpy"`` as the torch-free ONNX runtime does).
- ``regions``: full-size masks in bounded chunks on the logits' device (``full_size_chunks``), the
  evaluation's ``region_masks`` and ``CropMasks``.
- ``rle``: COCO's compressed RLE (run lengths, then counts strings).
"""
