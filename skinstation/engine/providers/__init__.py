"""Third-party providers: accounts, API keys, quotas, rate limits and classify."""
