"""The wire contract between a station and the engine: both sides import it, neither owns it.

:mod:`.paths` (API prefix and multipart field names), :mod:`.uploads` (the capture document a
station uploads and the engine's receipt), :mod:`.messages` (enrollment, reviews pulled by a
station, station events) and :mod:`.manifest` (the signed model manifest: canonical bytes,
signing and verification). A station builds its messages from these classes and the engine
validates them with the same classes, so no field is ever read by a raw string key.
"""
