"""The numbers the verdict's cause is read with, declared once: workers/engine/cause.py
checks each guard against them and the metric registry (contract/metrics.py) draws them as
the collapsed levels of the signals the checks read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CauseThresholds:
    """Every number the diagnosis uses, and the evidence that chose it (docs/causes.md has
    the runs: ``python -m bench.causes``).

    * DINO (Caron et al., ICCV 2021, Sec. 5.3, Fig. 7): H(P_t, P_s) = h(P_t) + KL(P_t‖P_s);
      both collapses drive KL to 0, the entropy tells them apart (0: no centering, ln K: no
      sharpening). Measured (README, "DINO on a small ViT", digits, K = 128, ln K = 4.85):
      KL/ln K at the last epoch 0.005 (no centering, small CNN), 0.009 (no centering, ViT),
      0.041 (no sharpening, both backbones), against 0.18-0.33 for runs with both guards,
      collapsed or not; the KL threshold 0.08 is their geometric middle. Entropy share h/ln K:
      0.02 and 0.24 without centering, 0.98-1.0 without sharpening, 0.87-0.99 with both
      guards (whose KL stays high): 0.9 splits the last two (one third, the first two, until
      the external loops below). At K = 1024 the
      dino preset itself (teacher 0.04, student 0.1, centre norm > 0) collapses on the CPU
      with h/ln K 0.96 and KL/ln K 0.04, the no-sharpening signature: where the temperatures
      are logged, sharpening is named only with the teacher's at least 0.9 x the student's,
      and centering only with a centre norm of 0 where it is logged. dino-no-centering at
      K = 1024 ends with h/ln K 0.05-0.06 but KL/ln K 0.09-0.10 (seed 0): a centre measured at
      0 stands in for the vanishing KL. With the centre measured at 0 the entropy share may
      also reach one half (fewer than sqrt(K) effective prototypes per sample, the balancing
      check's limit): runs without centering ended at 0.02-0.35 (docs/causes.md; 0.35 in
      dino-no-centering on digits seed 1), runs with both guards at 0.87-0.99.
      Where the loop does not log the guard's own setting (an external loop logging its
      momentum, not its centre or temperatures), the signature alone is not enough: DINO-style
      loops with every guard on that collapse for other reasons (LayerNorm or no
      normalisation; photo patches, wine, breast cancer; 2026-12-06, 354 external loops,
      K = 16, 64, 256, seeds 0-3) ended with h/ln K 0.11-0.33 and a low KL (the no-centering
      signature at one third) or as uniform, up to 0.994 (no-sharpening loops: 0.977-0.999).
      Without a logged centre, centering is named only with the teacher at most 0.1 of ln K
      (no-centering loops: 0.00-0.20) and its samples on fewer than sqrt(K) prototypes
      together (the entropy of the mean assignment under half ln K: no-centering loops
      0.00-0.43, loops with every guard on 0.42-0.97, a centred teacher spreading its samples
      over the prototypes); without logged temperatures sharpening is never named.
    * the target is the online network when the logged EMA momentum is 0 or the parameter
      distance of the two branches is 0 (up to float rounding): DINO Fig. 6 ("student copy"),
      BYOL Table 5 (tau = 0); the momentum is read beside a teacher only (a SimSiam loop logs
      momentum 0 by convention and has no target network to measure).
    * a fast EMA: a base momentum below 0.99, faster than BYOL's 0.996 and than the 0.99 of
      the symmetric-predictor control of docs/causes.md (its fast-EMA runs used 0.9).
    * negatives: the softmax mass rests on fewer than 1.5 negatives (the perplexity of the
      negatives' weights; 2N-2 when the embedding is collapsed with negatives present, since
      all weigh the same); negatives left out of the loss are read from the configuration.
    * balancing: after balancing the codes use fewer than e^(0.5 ln K) = sqrt(K) prototypes
      (usage entropy share below 0.5; swav-no-sinkhorn: 0.000, healthy swav 0.999,
      deepcluster 0.955, deepcluster-no-reassign 0.71), or each code is uniform over the K
      prototypes (assignment entropy share above 0.97: Sinkhorn with epsilon 1, 1.000;
      healthy swav 0.72, deepcluster 0.80) with Sinkhorn's epsilon logged at 0.2 or more:
      Sinkhorn makes every code uniform for an embedding collapsed for any reason (equal
      scores, whatever the epsilon: 1.000 at SwAV's 0.05), so the codes alone cannot tell.
      0.2 lies between the presets' 0.03-0.05 and the weakened runs' 0.5-1.0 (geometric
      middle of 0.05 and 1.0: 0.22). DINO's balancing is its centering: with DINO's
      signals present (a student's KL, DINO's schedules) this check is left to the DINO
      check; a teacher's probabilities alone are read as a clustering loop's codes.
    * variance term: the unweighted hinge mean_j max(0, 1 - std_j) at or above 0.8 (every
      dimension's std below about 0.2; a logged value above 1 is a weighted term, not
      read). Healthy vicreg 0.62, vicreg with variance weight 0 or 0.1 0.88 (digits, 10
      epochs, while their spread fell 0.80 -> 0.56). The fraction of
      dimensions under the hinge is 1.0 in every VICReg run at this scale, healthy ones too,
      so it is cited, never used. A configuration weighing the variance term at least as
      much as the invariance (VICReg's mu = lambda = 25) leaves it unnamed: every collapse to
      a point saturates the hinge, so with the guard at full weight the hinge is a symptom.
    * decorrelation: a dimensional collapse whose off-diagonal correlation energy
      sum_(i!=j) C_ij^2 / d exceeds half its ceiling d - 1: barlow-no-offdiag 0.97,
      vicreg-no-covariance 0.86, against 0.12-0.24 for the healthy Barlow Twins and VICReg
      runs (d = 128).
    * SIGReg (Balestriero & LeCun, arXiv 2511.08544): the probe's SIGReg statistic (fixed
      slices, the probe's N) not reduced from its epoch-0 value, in a collapsed run. LeJEPA
      drives it down (digits 73 -> 43, shapes 75 -> 18 in 12 epochs: 0.59 and 0.24 of
      epoch 0); without SIGReg it rises towards the value of every embedding at the origin
      (N x 0.41 = 105 for N = 256: 73 -> 101, 75 -> 103, 1.38-1.39 of epoch 0) while the
      raw z shrinks to 0.05-0.16 of its epoch-0 scale. 0.9 x epoch 0 lies between them.
      Not named with SIGReg weighted at the paper's lambda = 0.05 or more (a shrinking z
      raises the statistic whatever shrank it).
    * weight decay: the per-step shrink lr x wd of the logged schedules, at its peak, above
      3e-3, under plain SGD only, in a run with an asymmetric branch measured (Tian, Chen &
      Ganguli, ICML 2021, Sec. 4: weight decay drives every eigen-mode of the online network
      to 0 once it outweighs the predictor's alignment; a SimCLR loop at lr x wd 4e-3 stayed
      healthy, and without its negatives collapsed for want of them, 2026-12-06). SGD runs
      of 80 steps (docs/causes.md, "Weight decay and the optimiser"):
      SimSiam collapsed at 4.9e-3 and above (weight decay 0.1 at the preset's learning rate,
      0.02 at 5x it; momentum 0, 0.5 or 0.9 alike), BYOL at 3.7e-3 and above; healthy at
      2.5e-3 and below (SimSiam 0.05, BYOL 0.02, SimSiam 0.1 at a tenth of the learning
      rate); the learning-rate collapses (weight decay 5e-4) peak at 1.25e-3. Under AdamW
      (decoupled) the product predicted nothing: lr 3e-2 collapsed with weight decay 1 and
      with 0 alike; under LARS (a trust ratio rescales the step) weight decay 1 stayed
      healthy at lr x wd 4.9e-2. So the check reads the configuration's ``optimizer``: SGD
      only, and an optimiser not given leaves it silent.
    Calibration runs: ``python -m bench.causes`` (digits and shapes, seeds 0 and 1, small_cnn,
    10 epochs, 512 training images at 16 px); their table is docs/causes.md.
    """

    kl_share_collapsed: float = 0.08
    entropy_share_no_centering: float = 0.1
    entropy_share_uncentred: float = 0.5
    entropy_share_no_sharpening: float = 0.9
    sharpening_ratio: float = 0.9
    same_network: float = 1e-6
    fast_ema: float = 0.99
    effective_negatives_none: float = 1.5
    usage_share_unbalanced: float = 0.5
    assignment_share_uniform: float = 0.97
    sinkhorn_epsilon_weak: float = 0.2
    variance_hinge: float = 0.8
    off_diagonal_share: float = 0.5
    shrink_per_step: float = 3e-3
    sigreg_not_reduced: float = 0.9
    sigreg_weight_full: float = 0.05


CAUSE_THRESHOLDS = CauseThresholds()
