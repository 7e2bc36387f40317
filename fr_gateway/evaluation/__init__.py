"""Accuracy you can state: error rates measured through the gateway's own API, and thresholds chosen from them."""
