"""The account service: accounts, sign-in sessions and the keys that sign access tokens."""
