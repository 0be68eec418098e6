"""The durable store: SQLAlchemy models, the database wrapper and repository functions."""
