"""Configuration read from the environment (and .env), and process logging."""
