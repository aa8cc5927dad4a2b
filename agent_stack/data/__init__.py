"""RLDS data: Open-X-Embodiment and our own simulator demonstrations, read through one pipeline.

* `standardize` — one function per dataset into the common format (`register_dataset`);
* `rlds` — open a TFDS builder directory or an OXE name, standardised episodes;
* `statistics` — normalisation statistics, one streaming pass, cached beside the data;
* `pipeline` — windows (observation history, action chunks, pad masks), mixtures, augmentation;
* `torch_dataset` — the PyTorch IterableDataset over it, sharded across workers and ranks;
* `rlds_writer` — write RLDS datasets (`agent-stack collect` uses it).

Importing this package loads TensorFlow isolated, so that it can share a process with MuJoCo's EGL
rendering and torch.compile (see agent_stack/native_libraries.py).
"""

from agent_stack.native_libraries import import_tensorflow

import_tensorflow()
