"""One router per resource: flows, runs, the Flow Manager endpoint and the operational routes."""
