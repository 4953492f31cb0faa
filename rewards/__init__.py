"""Rewards: sales credit, claims, the points ledger and reward status."""
