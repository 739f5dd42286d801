"""The vocabulary every layer shares, below them all: it imports nothing of ours but errors."""
