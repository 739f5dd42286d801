"""Reading a definition's YAML or JSON text into plain data with the place of every value.

Split by job: `yaml_reader` (with `yaml_placeholders`, `yaml_skim`, `yaml_nodes` and
`yaml_data`) and `json_reader` read the text; `yaml_limits` and `yaml_positions` hold what both
share. `app.dsl.loading` is the front every caller imports.
"""
