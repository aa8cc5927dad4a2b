"""Diffusion Policy (Chi et al. 2023, CNN variant): action chunks denoised by a 1-D temporal U-Net
conditioned on ResNet/spatial-softmax image features, proprioception and an instruction embedding.

* `configuration_diffusion` — `DiffusionConfig`, saved as JSON beside the weights;
* `modeling_diffusion` — `DiffusionModel` (encoder, U-Net, DDPM loss, DDIM sampling);
* `policy` — `DiffusionPolicy`, loading a checkpoint and acting in robot units with a receding horizon.
"""

from agent_stack.control.diffusion.configuration_diffusion import DiffusionConfig
from agent_stack.control.diffusion.modeling_diffusion import DiffusionModel
from agent_stack.control.diffusion.policy import DiffusionPolicy

__all__ = ["DiffusionConfig", "DiffusionModel", "DiffusionPolicy"]
