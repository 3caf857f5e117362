"""Everything cryptographic, shared by every party: the recipes layer.

No other package imports ``cryptography`` or ``joserfc``.
"""
