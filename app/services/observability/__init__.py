"""Seeing what the service does: metrics (`metrics.py`), structured logs (`logs.py`), the
engine's observer that feeds them (`observer.py`)."""
