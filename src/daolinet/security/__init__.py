"""Identities and TLS: the installation's CA (pki.py), what a certificate says
about its holder (identity.py), and the SSL contexts every channel uses (tls.py)."""
