"""The PySide6 exam-station application (the only package that imports Qt)."""

from skinstation.ui import qt_compat

qt_compat.install()
