"""Serving: TF Serving configuration, rollout tooling and a TF-Serving-compatible dev server."""
