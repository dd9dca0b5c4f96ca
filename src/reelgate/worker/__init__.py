"""Workers: claim tasks with a lease, render, publish, and deliver callbacks."""
