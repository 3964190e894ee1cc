"""The neutral core every stage imports: config, errors, workspace layout and IO, records,
the answer scorer, model loading, the one generation path, runs, retrieval. It imports no stage."""
