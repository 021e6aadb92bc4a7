"""Engine accounts (administrators, dermatologists): passwords, logins, lockout."""
