"""What the station and the engine share and is neither: the bottom layer.

UTC time helpers (:mod:`.timeutil`), the SQLAlchemy building blocks (:mod:`.sqlbase`) and
migrations (:mod:`.migrations`), atomic writes and owner-only permissions (:mod:`.files`), the
secure keyring and its secrets (:mod:`.keystore`, :mod:`.keyring_file`), encryption at rest
(:mod:`.crypto`, :mod:`.sqlcrypto`, :mod:`.rotation`, :mod:`.sqlrewrite`), content-addressed image
files (:mod:`.images`), password hashing and policy (:mod:`.passwords`), account names
(:mod:`.usernames`), plain-text field checks (:mod:`.validation`), the translated-text lookup
(:mod:`.i18n`) and the triage vocabulary (:mod:`.triage`) — one definition each. Nothing here
imports another SkinStation package except the settings and resource paths.
"""
