"""Engine migration scripts."""
