"""The tamper-evident, encrypted audit log of every decision and refusal, and the auditors' tools."""
