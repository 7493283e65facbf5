"""Routing: the rules file (rules) and the pure decision of where an event goes (router)."""
