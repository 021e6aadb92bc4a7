"""The learning unit: data sources, splits, training, calibration and evaluation reports."""
