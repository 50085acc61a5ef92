"""Project scripts: `python -m scripts.demo`."""
