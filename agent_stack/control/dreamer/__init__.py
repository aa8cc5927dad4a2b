"""DreamerV3 (Hafner et al., 2023): RSSM world model, actor-critic learning in imagination.

* `configuration_dreamer` — `DreamerConfig` (the 2023 paper's defaults, `preset(size)` for XS..XL);
* `modeling_dreamer` — `WorldModel` and `DreamerAgent` (the `OnlineAgent` interface).
"""

from agent_stack.control.dreamer.configuration_dreamer import DreamerConfig
from agent_stack.control.dreamer.modeling_dreamer import DreamerAgent

AGENT = DreamerAgent

__all__ = ["AGENT", "DreamerAgent", "DreamerConfig"]
