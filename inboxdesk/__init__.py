"""inboxdesk: the application — settings, domain rules, the desk service, CLI and daemon."""
