"""The floor every other package stands on: user-facing errors, entry-point import and machine
resource limits. It imports nothing of compressor/, targets/ or calibration/, so those three
never reach up or sideways for an error class (compressor → targets → foundation,
calibration → foundation)."""
