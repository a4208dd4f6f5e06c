"""Lowerings of one captured step graph to runtime formats, and the artifact writer."""
