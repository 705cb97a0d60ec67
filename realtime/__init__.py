"""The realtime service (adr/10-real-time.md): per-user event streams (`realtime.events`) and
live group sessions (`realtime.groups`) on an asyncio gRPC server, over NATS (`realtime.bus`).
`python -m realtime` (realtime/__main__.py); wiring in realtime/app.py."""
