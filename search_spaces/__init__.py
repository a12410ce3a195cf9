"""The built-in studies (one YAML spec each), installed as `hpo.studies`: `hpo studies` lists
them and `hpo run NAME` runs one by name (see hpo.studies_index)."""
