"""Re-learning: training jobs, the worker, the warm-start retraining and the gate."""
