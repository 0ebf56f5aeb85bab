"""dmt_wrap: Dual Mean-Teacher semi-supervised audio-visual source localization, for any network."""
from .config import ABLATIONS, DMTConfig, ablation
from .contract import ContractError, NetworkOutput
from .trainer import NonFiniteLossError
from .wrapper import DualMeanTeacher

__all__ = ["ABLATIONS", "ContractError", "DMTConfig", "DualMeanTeacher", "NetworkOutput", "NonFiniteLossError",
           "ablation"]
__version__ = "0.1.0"
