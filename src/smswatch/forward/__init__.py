"""Forwarding: every stored event POSTed on to the team's own app, durably (`--forward-to`).

The outbox is in the store (store/api.py Outbox); the sending is done by a child process of its
own (worker.py), started and watched by the engine (supervisor.py). A separate process at a
lower priority, because sending costs CPU: on a busy core the kernel gives the webhooks'
process the time first, and a slow, failing or hanging app is only ever that process's problem.
"""
