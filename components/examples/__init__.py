"""Example pipelines built on the generated components."""
