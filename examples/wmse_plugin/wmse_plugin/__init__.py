"""W-MSE as a Collapse Lab method plugin.

Ermolov, Siarohin, Sangineto, Sebe. "Whitening for Self-Supervised Representation
Learning". ICML 2021 (arXiv 2007.06346).

The positives of a batch are pulled together by a mean squared error between their
normalised embeddings, which alone is minimised by mapping every image to one point. W-MSE
first whitens the embeddings of each sub-batch (Cholesky whitening: zero mean, identity
covariance), so they cannot all coincide: the whitening is what prevents collapse, and the
``wmse-no-whitening`` preset shows what happens without it.

``wmse_plugin.spec`` is the torch-free half (options, catalogue entry, presets) that the
Collapse Lab API reads; ``wmse_plugin.method`` the training class its workers import.
"""
