"""Session-wide test environment: offline, CPU, quiet, deterministic."""

import os

# Nothing may be fetched from a hub during tests; the tiny model and the data are built on the spot.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The CUDA build of torch runs on CPU here; make that explicit so no code path probes for a GPU.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("WANDB_DISABLED", "true")
# Two cores shared by torch's intra-op pool and the test's own work: one thread is several times faster for the
# tiny model here (64 generated tokens: 30 s with 2 threads under load, 0.3 s with 1). Must precede torch's import.
os.environ.setdefault("OMP_NUM_THREADS", "1")
