"""Pydantic request and answer models of the HTTP API (DESIGN.md section 3), one module per
resource. Answers are built from the services' domain values with each model's `of()`."""
