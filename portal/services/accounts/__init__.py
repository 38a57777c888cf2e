"""Accounts: users, companies, sign-in, API tokens, platform tokens, and who may act for
which company."""
