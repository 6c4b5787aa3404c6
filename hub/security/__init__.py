"""Security primitives of the hub: everything that makes or checks a secret, a key or a certificate.

Map:

* ``files`` — owner-only (0600) files written once, safely when two hub processes start together.
* ``ca`` — the hub's own certificate authority and serving certificate (``ensure_ca``,
  ``ensure_server_cert``, ``fingerprint_of``), made with ``cryptography`` when no TLS material is given.
* ``signing`` — the Ed25519 key that signs every bundle (``load_or_create_signing_key``).
* ``secrets`` — cluster credentials and bootstrap tokens: generation, hashing at rest, constant-time
  comparison, and the join token that carries a bootstrap token with the CA fingerprint.
* ``admin_credential`` — the admin credential and the ready-to-use CLI configuration written at first start.

Nothing here logs or returns a secret in an error message.
"""
