"""The operator's report: one self-contained HTML page (model.py: what it shows; render.py: how)."""
