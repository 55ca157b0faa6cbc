"""vcn's FiftyOne operators: thin App glue over :mod:`vcn_plugin`."""
from .stage1 import DetectFaces, ImportVideos

OPERATORS = [ImportVideos, DetectFaces]
