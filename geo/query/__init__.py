"""A request's selection: its parameters (params), CQL2 (cql, cql_text, cql_nodes), and the indexed
snapshot it runs on (featuretable, with the typed columns of frame)."""
