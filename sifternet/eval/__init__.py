"""Evaluation: backdoor attacks, metrics, controls and reports (never imported by the core)."""
