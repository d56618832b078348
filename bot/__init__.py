"""The Telegram staff bot (issue 4): handlers, keyboards, rendering."""
