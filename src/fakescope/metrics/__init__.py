"""Binary metrics of p(fake) scores, numbers in and numbers out: accuracy, ROC-AUC, EER,
calibration, bootstrap intervals and the threshold policies (`binary`), their shapes
(`shapes`), and the unsure band fitted to a false-accusation budget (`unsure_band`).

Below training, evaluation, robustness and the bundles: it imports nothing of fakescope's
but these modules, so each of them can use it without importing another.
"""
