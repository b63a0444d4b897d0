"""Custom actions for the Rasa action server (`python -m actions.server`, see `actions/server.py`).

rasa_sdk imports every module of this package and registers each `Action` subclass.
"""
