"""The environment: NATS, service processes, the reaper, the links (fault proxies), HTTP, attach mode.

Up and down, knowing nothing of runs: this floor imports only the bottom one (config, errors, events).
"""
