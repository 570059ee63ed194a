"""Notify: promoting a sample's staged outputs, its cost estimate, and its EventBridge event.

The logic of the notify Lambda (functions/notify). No AWS in here.
"""
