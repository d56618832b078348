"""TLS for IMAP and SMTP (issue 10): certificates and host names verified by default.

One place builds every client context: the system's trust store, or a private CA given by
`tls_ca_file` (an institution's own CA); `tls_verify = false` turns checking off for a known
self-signed server, and is never the default.
"""

from __future__ import annotations

import ssl


def client_context(verify: bool, ca_file: str = "") -> ssl.SSLContext:
    """A client context that checks the server's certificate chain and name (unless `verify` is off)."""
    context = ssl.create_default_context(cafile=ca_file or None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
