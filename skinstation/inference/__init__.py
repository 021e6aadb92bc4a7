"""On-device inference: taxonomy, decision rule, preprocessing, model files and the classifier.

This layer has no Qt, no database and no HTTP: the station, the engine and training all use it.
"""
