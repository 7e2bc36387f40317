"""Security: data keys for encryption at rest."""
