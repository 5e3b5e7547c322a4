"""The Qt widgets of the desktop app (no logic: they show state and emit signals)."""
