"""The app layer: ready-made paths from a data file to an artifact (text classifiers and
language models), restoring trained adapters, and the `edgetune` command line."""
