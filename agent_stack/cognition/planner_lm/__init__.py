"""The embedded planner LM: a small causal LM this project trains (`agent-stack train planner-lm`) and ships
in `weights/` as a plain Hugging Face folder, so the generic `hf` backend runs it offline.

`corpus` generates its training data from the skill library, `tokenizer` builds its word-level tokenizer,
`configuration_planner_lm` sizes it.
"""

from pathlib import Path

WEIGHTS_DIR = Path(__file__).parent / "weights"
"""The shipped model folder (config.json, model.safetensors, tokenizer, corpus_card.json)."""
