"""Durable state: tasks (which are also the queue), tokens and the callback outbox."""
