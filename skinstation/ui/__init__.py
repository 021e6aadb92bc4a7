"""The PySide6 exam-station application (the only package that imports Qt)."""
