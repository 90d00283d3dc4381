"""Paper-standard depth evaluation: metrics, dataset loaders, the ``dkt-stack eval`` table.

* :mod:`.metrics`: per-sequence alignment and the paper's metrics;
* :mod:`.datasets`: ClearPose and DREDS folder layouts;
* :mod:`.bag_eval`: depth topics of a replayed bag against its ground-truth topic;
* :mod:`.report`: CSV/JSON written atomically; :mod:`.cli`: ``dkt-stack eval``.
"""
