"""Authentication: who is calling, and how they get in.

One job per module, each importing only those above it in this list (tests/auth/test_modules.py):

- `credentials`: tokens stored as their hash, e-mails compared normalised.
- `activity`: the activity log (logins, logouts, failures, account changes).
- `throttling`: failed logins counted per account and address; the lockouts; the purge.
- `one_time_codes`: TOTP codes and recovery codes, checked and burnt.
- `reauthentication`: a logged-in user proves it is them again (password, and a code when 2FA is on).
- `caller`: the caller's own user row and memberships (GET /me).
- `sessions`: a user's sessions: the live ones listed, one or all ended.
- `authentication`: a request's session token turned into its `Scope` (the hot path of every request).
- `two_factor`: setting up, confirming and disabling 2FA; new recovery codes.
- `login`: logging in and out, switching tenant, changing one's password.

`api.py` holds the endpoints (/auth/..., /me/...); `core.auth` calls `authentication.authenticate`.
"""
