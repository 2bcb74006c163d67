"""The Patreon API client: HTTP with retries (``http``), the rate limiter, OAuth."""
