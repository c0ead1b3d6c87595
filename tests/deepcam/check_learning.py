"""Asserts from a halo-deepcam metrics file that the model learned to segment: the last
validation IoU (mean over samples of the per-sample mean IoU over the 3 classes) is at least
0.3 above the IoU of predicting background everywhere (about 0.32 on the test data, so the
bar is about 0.62), above the first epoch's, and both rare classes reach an IoU of 0.3."""
import json
import sys

MARGIN = 0.3
RARE_CLASS_IOU = 0.3

records = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
first, last = records[0], records[-1]
iou, base = last["val_iou"], last["val_iou_all_background"]
print(f"val IoU {first['val_iou']:.4f} -> {iou:.4f}; predicting background everywhere: {base:.4f}; "
      f"cyclone {last['val_iou_cyclone']:.4f}, river {last['val_iou_river']:.4f}")
if not iou >= base + MARGIN:
    sys.exit(f"FAIL: validation IoU {iou:.4f} is not {MARGIN} above the all-background IoU {base:.4f}")
if not iou > first["val_iou"]:
    sys.exit("FAIL: validation IoU did not rise")
for k in ("val_iou_cyclone", "val_iou_river"):
    if not last[k] >= RARE_CLASS_IOU:
        sys.exit(f"FAIL: {k} {last[k]:.4f} is below {RARE_CLASS_IOU}")
