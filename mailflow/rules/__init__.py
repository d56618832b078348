"""The inbound rule chain: small named rules, each deciding one concern (see chain.py)."""
