"""The run directory's per-step logs: their files and columns. Written by the callbacks of
train.py and by AblationRunner (a user's own loop), checked by `python -m text2sign.check`."""

TRAINING_METRICS = "training_metrics.csv"  # and training_metrics.json, the same rows
TRAINING_COLUMNS = ("epoch", "step", "loss", "lr", "lr_text_encoder", "elapsed_s",
                    "peak_memory_gb", "avg_memory_gb", "timestamp")
GPU_MEMORY = "gpu_memory.csv"
GPU_MEMORY_COLUMNS = ("epoch", "step", "peak_gb", "avg_gb", "allocated_gb", "reserved_gb",
                      "timestamp")
GB = 1024**3
