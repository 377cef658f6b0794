"""Identity: password hashing, tokens, roles and the contexts built from them."""
