"""vcn's FiftyOne operators: thin App glue over :mod:`vcn_plugin`."""
from .evaluation import EVALUATION_OPERATORS
from .stage1 import DetectFaces, ImportVideos

OPERATORS = [ImportVideos, DetectFaces, *EVALUATION_OPERATORS]
