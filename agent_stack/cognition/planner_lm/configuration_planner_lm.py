"""Typed config of the embedded planner LM: a small Llama-architecture causal LM in Hugging Face format.

The shipped model is a plain `LlamaForCausalLM` folder, so the generic `hf` backend (AutoModelForCausalLM +
AutoTokenizer, local files only) runs it and no custom modelling code is needed; this config only chooses
its size. It is saved as `planner_lm_config.json` beside the HF `config.json`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from transformers import LlamaConfig

CONFIG_FILE = "planner_lm_config.json"
DTYPES = ("float16", "bfloat16", "float32")


@dataclasses.dataclass
class PlannerLMConfig:
    hidden_size: int = 192
    """Width of the residual stream."""
    num_layers: int = 4
    """Transformer blocks."""
    num_heads: int = 4
    """Attention heads; hidden_size must divide by it."""
    intermediate_size: int = 512
    """Width of the SwiGLU MLP."""
    max_length: int = 512
    """Longest prompt + completion in tokens (RoPE positions; the corpus stays under ~300)."""
    dtype: str = "float16"
    """Dtype the weights are saved in (a 2 M parameter model is then ~4 MB)."""

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"PlannerLMConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads or (self.hidden_size // self.num_heads) % 2:
            raise ValueError(f"PlannerLMConfig.hidden_size {self.hidden_size} must split into num_heads "
                             f"{self.num_heads} heads of even size (RoPE)")
        if self.dtype not in DTYPES:
            raise ValueError(f"PlannerLMConfig.dtype must be one of {DTYPES}, got {self.dtype!r}")

    def hf_config(self, vocab_size: int, bos_token_id: int, eos_token_id: int,
                  pad_token_id: int) -> LlamaConfig:
        """The transformers config of this size for a tokenizer's vocabulary (tied embeddings: smaller)."""
        return LlamaConfig(vocab_size=vocab_size, hidden_size=self.hidden_size,
                           intermediate_size=self.intermediate_size, num_hidden_layers=self.num_layers,
                           num_attention_heads=self.num_heads, num_key_value_heads=self.num_heads,
                           max_position_embeddings=self.max_length, tie_word_embeddings=True,
                           bos_token_id=bos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id)

    def save(self, directory: Path) -> None:
        (Path(directory) / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> PlannerLMConfig:
        data = json.loads((Path(directory) / CONFIG_FILE).read_text())
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{CONFIG_FILE} has unknown fields {sorted(unknown)}")
        return cls(**data)
