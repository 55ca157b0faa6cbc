"""vcn's FiftyOne operators: thin App glue over :mod:`vcn_plugin`."""
from .corrections import CORRECTION_OPERATORS
from .evaluation import EVALUATION_OPERATORS
from .fanout import FANOUT_OPERATORS
from .identities import IDENTITY_OPERATORS
from .stage1 import DetectFaces, ImportVideos

OPERATORS = [ImportVideos, DetectFaces, *FANOUT_OPERATORS, *IDENTITY_OPERATORS, *EVALUATION_OPERATORS, *CORRECTION_OPERATORS]
