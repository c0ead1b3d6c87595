"""Asserts the last validation MAE in a halo metrics file is below `ratio` times the MAE of
predicting the mean (0 for the generated targets) and below the first epoch's."""
import json
import sys

records = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
ratio = float(sys.argv[2])
first, last = records[0], records[-1]
print(f"val MAE {first['val_mae']:.4f} -> {last['val_mae']:.4f}; predicting the mean: {last['val_mae_predict_zero']:.4f}")
if not last["val_mae"] < ratio * last["val_mae_predict_zero"]:
    sys.exit(f"FAIL: validation MAE {last['val_mae']:.4f} is not below {ratio} x {last['val_mae_predict_zero']:.4f}")
if not last["val_mae"] < first["val_mae"]:
    sys.exit("FAIL: validation MAE did not fall")
