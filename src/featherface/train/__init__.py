"""Optional training and evaluation stack (``pip install "featherface[train]"``).

Nothing outside ``featherface.train`` imports this package. Training is split into
:mod:`~featherface.train.config` (``TrainConfig``, ``DataSource``), :mod:`~featherface.train.sampler`
(``EpochBatchSampler``), :mod:`~featherface.train.checkpoint` (checkpoints and the weights a run
starts from) and :mod:`~featherface.train.loop` (``Trainer``, ``train``).
"""

__all__: list[str] = []  # a package of submodules: import them by name
