"""Label regions of an image with an exported RegionSpot model: ONNX Runtime, numpy and Pillow, no PyTorch.

    regionspot export onnx --out model-onnx          # once, where regionspot and torch are installed
    python examples/onnx_label.py model-onnx photo.jpg --names "red circle,blue square" --boxes "10,20,120,140"

Prints one JSON object: each region's box, label, score and top classes.
"""

import argparse
import json

from regionspot.runtime import OnnxRegionSpot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the folder written by `regionspot export onnx`")
    parser.add_argument("image", help="the image file")
    parser.add_argument("--names", required=True, help="class names, comma-separated")
    parser.add_argument("--boxes", required=True, help="boxes x1,y1,x2,y2 in image pixels, separated by ';'")
    parser.add_argument("--top-k", type=int, default=3, help="classes kept per region")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per graph (0: all cores)")
    args = parser.parse_args()

    model = OnnxRegionSpot(args.model, threads=args.threads)
    model.set_image(args.image)
    model.set_vocabulary([name.strip() for name in args.names.split(",") if name.strip()])
    boxes = [[float(v) for v in box.split(",")] for box in args.boxes.split(";") if box.strip()]
    regions = model.predict(boxes=boxes, top_k=args.top_k, return_masks=False)
    print(json.dumps(regions.to_dict(), indent=2))


if __name__ == "__main__":
    main()
