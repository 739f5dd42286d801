"""Flow Manager: YAML/JSON flow definitions executed durably, sequentially or as a DAG."""
