"""RT-X-style Vision-Language-Action policy: timm ViT image tokens, MiniLM language conditioning, a
block-causal transformer over an observation history, and a 256-bin or continuous action head.

* `configuration_vla` — `VLAConfig`, saved as JSON beside the weights;
* `action_tokenizer` — `ActionTokenizer`, normalised actions <-> bins;
* `modeling_vla` — `VLAModel` (FiLM, TokenLearner, transformer, heads and the loss);
* `policy` — `VLAPolicy`, loading a checkpoint and acting in robot units.
"""

from agent_stack.vla.action_tokenizer import ActionTokenizer
from agent_stack.vla.configuration_vla import VLAConfig
from agent_stack.vla.modeling_vla import VLAModel
from agent_stack.vla.policy import VLAOutput, VLAPolicy

__all__ = ["ActionTokenizer", "VLAConfig", "VLAModel", "VLAOutput", "VLAPolicy"]
