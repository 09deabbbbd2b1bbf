"""Explanation: interpretable models fitted to capability curves, emergence scores and verdicts."""
