"""Making WebRTC calls inside an emulated network and turning them into result rows."""
