"""The workflow side: code that Temporal replays (the process workflow outside its sandbox,
the others inside it: process.py says why).

`machine` decides (the process state machine, pure); `process` drives it as the process
workflow; `process_v1` is the first process workflow, kept for runs started before; `locks`,
`swaps` and `sweep` are the other workflows; `messages` and `payloads` are what crosses into
and out of them. Nothing here imports the mirror, a driver or anything else with I/O (a test
checks), so a worker can load it in the sandbox, or outside it, and replay it.
"""
