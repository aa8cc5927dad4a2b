"""TD-MPC2 (Hansen et al., ICLR 2024): implicit latent world model, MPPI planning, TD learning.

* `configuration_tdmpc2` — `TDMPC2Config` (the paper's defaults, `preset(model_size)`);
* `modeling_tdmpc2` — `WorldModel` and `TDMPC2Agent` (the `OnlineAgent` interface).
"""

from agent_stack.control.tdmpc2.configuration_tdmpc2 import TDMPC2Config
from agent_stack.control.tdmpc2.modeling_tdmpc2 import TDMPC2Agent

AGENT = TDMPC2Agent

__all__ = ["AGENT", "TDMPC2Agent", "TDMPC2Config"]
