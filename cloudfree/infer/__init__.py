"""Stage ``infer``: every tile and date of a region reconstructed with a trained model.

Reads the model file and the packed region; writes reconstructed GeoTIFFs and quality layers
under ``results/predictions/<experiment>/<region>/tiles/`` and the evaluation file
``eval.h5``.  Entry point: :func:`cloudfree.infer.region.infer_region`.
"""

from cloudfree.extras import missing_extra

try:  # every module of the stage runs the model
    import torch  # noqa: F401
except ImportError as exc:
    raise missing_extra("torch", "train") from exc
