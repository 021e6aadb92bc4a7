"""SkinStation: clinic skin-lesion capture station and central engine.

Triage support for clinic staff and dermatologists. Nothing SkinStation outputs is a diagnosis.
"""

__version__ = "0.1.0"
