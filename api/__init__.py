"""The thin web layer: REST to trigger and follow syncs, Socket.IO for live progress."""
