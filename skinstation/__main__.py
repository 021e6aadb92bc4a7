"""``python -m skinstation``: open the exam-station app on the embedded defaults."""

from skinstation.ui.app import main

if __name__ == "__main__":
    raise SystemExit(main())
