"""Deployments with terraform: the runner (the only place that runs terraform), plan records and
the guarded steps."""
