"""Stage ``train``: a reconstruction model trained on the packed files of an experiment.

Reads ``results/hdf5/<region>.h5`` of the experiment's regions; writes the model file
(:mod:`cloudfree.modelfile`), the history CSV, checkpoints and TensorBoard logs under
``results/models/<experiment>/``.  Entry point: :func:`cloudfree.train.launch.launch` (one
process, or torchrun workers running :func:`cloudfree.train.loop.train_model`).
"""
