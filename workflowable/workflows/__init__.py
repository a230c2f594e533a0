"""The workflow side: code that runs inside Temporal's workflow sandbox and is replayed.

`machine` decides (the process state machine, pure); `process` drives it as the process
workflow; `process_v1` is the first process workflow, kept for runs started before; `locks`,
`swaps` and `sweep` are the other workflows; `messages` and `payloads` are what crosses into
and out of them. Nothing here imports the mirror, a driver or anything else with I/O (a test
checks), so a worker can load it in the sandbox and replay it.
"""
