"""The station's screens, one module each."""
