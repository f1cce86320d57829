"""Features of images and volumes from any sparse encoder (for pipelines).

* `patches` -- `PatchFeatures`: an encoder on 2-D image patches, pooled;
* `volumes` -- `VolumePatchFeatures`: a TopK SAE on 3-D patches of volumes
  at a mask, pooled over blocks.
"""

from .patches import PatchFeatures
from .volumes import VolumePatchFeatures

__all__ = ["PatchFeatures", "VolumePatchFeatures"]
