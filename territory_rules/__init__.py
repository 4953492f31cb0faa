"""Territories, their rules, accounts, and the engine that assigns one to the other."""
