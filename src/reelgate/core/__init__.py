"""The neutral core: models, the task service and prompt enhancement."""
