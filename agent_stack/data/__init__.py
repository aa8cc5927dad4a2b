"""RLDS data: Open-X-Embodiment and our own simulator demonstrations, read through one pipeline.

* `standardize` — one function per dataset into the common format (`register_dataset`);
* `rlds` — open a TFDS builder directory or an OXE name, standardised episodes;
* `statistics` — normalisation statistics, one streaming pass, cached beside the data;
* `pipeline` — windows (observation history, action chunks, pad masks), mixtures, augmentation;
* `torch_dataset` — the PyTorch IterableDataset over it, sharded across workers and ranks;
* `rlds_writer` — write RLDS datasets (`agent-stack collect` uses it).
"""

# TensorFlow and Triton (shipped with CUDA builds of torch, imported by torch.compile and transformers)
# each bundle LLVM: loading Triton's library after TensorFlow's crashes the process, loading it first is
# safe. Every module here imports TensorFlow, and this package file runs before any of them.
try:
    import triton  # noqa: F401
except ImportError:
    pass
