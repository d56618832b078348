"""Mail in and out: sources, parsing, the rule chain, routing, outgoing mail and delivery."""
