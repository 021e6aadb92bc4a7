"""The patients domain: erasing a patient's (or old captures') data from the engine."""
