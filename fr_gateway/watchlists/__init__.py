"""Watchlists beside the KTP-el gallery: police hotlists, their alerts with evidence, adjudication and webhooks."""
