"""The catalog database: models, sessions and migrations."""
