"""Virtual keys and provider credentials: hashed keys, encrypted secrets, the `llmgw keys` commands."""
