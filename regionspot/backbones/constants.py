"""Pixel statistics of the backbones, on the 0..1 scale (one home for each)."""

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # SAM's (the released SAM stores them × 255)
IMAGENET_STD = (0.229, 0.224, 0.225)
