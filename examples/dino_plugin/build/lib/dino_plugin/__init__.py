"""DINO as a Collapse Lab method plugin.

Caron, Touvron, Misra, Jégou, Mairal, Bojanowski, Joulin. "Emerging Properties in
Self-Supervised Vision Transformers". ICCV 2021 (arXiv 2104.14294).

A student network matches the output distribution of a teacher (an EMA copy of the student)
over K output dimensions. Two operations on the teacher's output avoid collapse (paper,
Sec. 3.1 and Table 7 / Fig. 7): *centering* (subtract a running mean of the teacher's
logits: no dimension can dominate) and *sharpening* (a low teacher temperature: the output
cannot become uniform). With sharpening alone, one dimension dominates every output and the
embedding collapses; the ``dino-no-centering`` preset shows it.

``dino_plugin.spec`` is the torch-free half (options, catalogue entry, presets) that the
Collapse Lab API reads; ``dino_plugin.method`` the training class its workers import.
"""
