"""Application services: what the HTTP API (and the CLI) ask of the product, one call each.

They combine the flow language, the engine and the store; the API only parses and shapes.
"""
